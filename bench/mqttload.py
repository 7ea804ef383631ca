"""A multi-process MQTT load generator: asyncio Protocols on uvloop, tokens computed before the clock starts.

Each process owns a slice of the devices, connects them over TLS, waits for the start signal, runs
the scenario for the given seconds and reports counts (and latencies) through a pipe. Whether it
can outrun the server is measured, not assumed: ``mqtt_hub.py --reference`` points the same
generator at a server that acknowledges without doing anything (bench/mqtt_reference.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import orjson
import uvloop

from edgeprov import sas
from edgeprov.mqtt import codec
from edgeprov.mqtt.packets import Connack, Connect, PubAck, Publish, SubAck

HUB = "localhost"


@dataclass(frozen=True, slots=True)
class Scenario:
    kind: str  # idle | telemetry | reported | desired
    port: int
    ca: Path
    seconds: float
    window: int = 8
    payload: bytes = b'{"temperature": 21.5, "humidity": 40}'


@dataclass(slots=True)
class Report:
    connected: int = 0
    failed: int = 0
    completed: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0


def logins(device_ids: Sequence[str], key: str) -> list[bytes]:
    """CONNECT packets, signed once up front so signing costs nothing during the run."""
    expiry = int(time.time()) + 24 * 3600
    raw_key = sas.decode_key(key)
    packets = []
    for device_id in device_ids:
        token = sas.build_token(f"{HUB}/devices/{device_id}", raw_key, expiry)
        username = f"{HUB}/{device_id}/?api-version=2021-04-12"
        packets.append(codec.encode_connect(Connect(device_id, username, token, True, 0)))
    return packets


class Device(asyncio.Protocol):
    def __init__(self, scenario: Scenario, device_id: str, connect: bytes, report: Report) -> None:
        self.scenario = scenario
        self.device_id = device_id
        self.connect_packet = connect
        self.report = report
        self.decoder = codec.Decoder()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.running = False
        self.next_id = 0
        self.telemetry_topic = f"devices/{device_id}/messages/events/%24.ct=application%2Fjson&seq=1"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.connect_packet)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)

    def data_received(self, data: bytes) -> None:
        for packet in self.decoder.feed(data):
            if isinstance(packet, Connack):
                if self.scenario.kind == "desired":
                    self.send(codec.encode_subscribe(1, (("$iothub/twin/PATCH/properties/desired/#", 1),)))
                elif not self.ready.done():
                    self.ready.set_result(packet.code == 0)
            elif isinstance(packet, SubAck):
                if not self.ready.done():
                    self.ready.set_result(True)
            elif isinstance(packet, PubAck):
                if self.scenario.kind == "telemetry" and self.running:
                    self.report.completed += 1
                    self.publish_next()
            elif isinstance(packet, Publish):
                self.received(packet)

    def received(self, packet: Publish) -> None:
        if self.scenario.kind == "reported" and self.running and packet.topic.startswith("$iothub/twin/res/204/"):
            self.report.completed += 1
            self.publish_next()
        elif self.scenario.kind == "desired":
            sent = orjson.loads(packet.payload).get("sent")
            if sent:
                self.report.latencies.append(time.time() - sent)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def start(self) -> None:
        self.running = True
        if self.scenario.kind in ("telemetry", "reported"):
            for _ in range(self.scenario.window):
                self.publish_next()

    def publish_next(self) -> None:
        self.next_id = self.next_id % 0xFFFF + 1
        if self.scenario.kind == "telemetry":
            self.send(codec.encode_publish(self.telemetry_topic, self.scenario.payload, 1, self.next_id))
        else:
            topic = f"$iothub/twin/PATCH/properties/reported/?$rid={self.next_id}"
            body = b'{"counter": %d, "state": "ok"}' % self.next_id
            self.send(codec.encode_publish(topic, body, 1, self.next_id))


async def _run(
    scenario: Scenario, devices: list[tuple[str, bytes]], pipe: multiprocessing.connection.Connection
) -> None:
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context(cafile=str(scenario.ca))
    report = Report()
    clients: list[Device] = []
    gate = asyncio.Semaphore(100)  # handshakes in flight: the server's accept queue is not the test

    async def connect(device_id: str, packet: bytes) -> None:
        async with gate:
            try:
                _, client = await loop.create_connection(
                    lambda: Device(scenario, device_id, packet, report),
                    "127.0.0.1",
                    scenario.port,
                    ssl=context,
                    server_hostname="localhost",
                )
                ok = await asyncio.wait_for(client.ready, 60)
            except (OSError, TimeoutError, ssl.SSLError):
                report.failed += 1
                return
            if ok:
                report.connected += 1
                clients.append(client)
            else:
                report.failed += 1

    await asyncio.gather(*(connect(d, p) for d, p in devices))
    pipe.send(("connected", report.connected, report.failed))
    pipe.recv()  # go
    cpu_start = time.process_time()
    for client in clients:
        client.start()
    await asyncio.sleep(scenario.seconds)
    for client in clients:
        client.running = False
    report.cpu_seconds = time.process_time() - cpu_start
    pipe.send(("done", report.completed, report.latencies, report.cpu_seconds))
    pipe.recv()  # release
    for client in clients:
        if client.transport is not None:
            client.transport.close()


def _process(scenario: Scenario, devices: list[tuple[str, bytes]], pipe: multiprocessing.connection.Connection) -> None:
    uvloop.run(_run(scenario, devices, pipe))


@dataclass(slots=True)
class Fleet:
    """Running load processes, each with its slice of devices."""

    pipes: list[multiprocessing.connection.Connection]
    processes: list[multiprocessing.process.BaseProcess]
    connected: int = 0
    failed: int = 0

    def go(self) -> None:
        for pipe in self.pipes:
            pipe.send("go")

    def results(self) -> tuple[int, list[float], list[float]]:
        completed, latencies, cpu = 0, [], []
        for pipe in self.pipes:
            _, count, samples, seconds = pipe.recv()
            completed += count
            latencies.extend(samples)
            cpu.append(seconds)
        return completed, latencies, cpu

    def stop(self) -> None:
        for pipe in self.pipes:
            pipe.send("release")
        for process in self.processes:
            process.join(30)


def start(scenario: Scenario, device_ids: Sequence[str], key: str, processes: int) -> Fleet:
    packets = logins(device_ids, key)
    pairs = list(zip(device_ids, packets, strict=True))
    context = multiprocessing.get_context("fork")
    fleet = Fleet([], [])
    for index in range(processes):
        mine, theirs = context.Pipe()
        process = context.Process(target=_process, args=(scenario, pairs[index::processes], theirs), daemon=True)
        process.start()
        fleet.pipes.append(mine)
        fleet.processes.append(process)
    for pipe in fleet.pipes:
        _, connected, failed = pipe.recv()
        fleet.connected += connected
        fleet.failed += failed
    return fleet


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_rss(pid: int) -> int:
    """RSS of a process and its children (the supervisor and its workers)."""
    total = rss_bytes(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        total += sum(rss_bytes(int(child)) for child in children.read_text().split())
    return total
