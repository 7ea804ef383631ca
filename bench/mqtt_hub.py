"""Benchmarks of the hub's MQTT endpoint against a real ``edgeprov serve`` (issue 3's performance targets).

    python -m bench.mqtt_hub idle --devices 20000          # concurrent idle TLS connections, memory each
    python -m bench.mqtt_hub telemetry --devices 1000      # QoS 1 telemetry messages/s, acknowledged = committed
    python -m bench.mqtt_hub reported --devices 1000       # reported patches/s, acknowledged = committed
    python -m bench.mqtt_hub desired --devices 200         # service desired patch -> device latency

Devices are created in the store before the server starts; tokens are signed before the clock
starts. ``--reference`` runs the same load against bench/mqtt_reference.py (answers without doing
anything) and prints edgeprov's figure as a ratio of it: what the generator itself can reach.
Run it inside a network namespace of its own (it binds ports on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import mqttload
from edgeprov import sas
from edgeprov.hub import registry
from edgeprov.server.bootstrap import bootstrap, open_store
from edgeprov.server.settings import ServerSettings
from edgeprov.store.base import Tx

KEY = sas.generate_key(32)
HTTPS_PORT, MQTT_PORT, REFERENCE_PORT = 9443, 9883, 9884


def _create_devices(data_dir: Path, count: int) -> list[str]:
    settings = ServerSettings(data_dir=data_dir, https_port=HTTPS_PORT, mqtt_port=MQTT_PORT)
    bootstrap(settings)
    ids = [f"bench-{n:06d}" for n in range(count)]
    store = open_store(settings)
    now = time.time()

    def write(tx: Tx) -> None:
        for device_id in ids:
            registry.upsert_sas_device(tx, "localhost", device_id, (KEY, KEY), False, now)
            registry.ensure_twin(tx, "localhost", device_id, {}, {}, now)

    try:
        store.write_blocking(write)
    finally:
        store.close()
    return ids


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


@contextlib.contextmanager
def _server(data_dir: Path, reference: bool, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    if reference:
        command = [sys.executable, "-m", "bench.mqtt_reference", "--data", str(data_dir), "--port", str(REFERENCE_PORT)]
        port = REFERENCE_PORT
    else:
        command = [
            sys.executable, "-m", "edgeprov", "serve", "--data", str(data_dir), "--https-port", str(HTTPS_PORT),
            "--mqtt-port", str(MQTT_PORT), "--workers", str(workers),
        ]  # fmt: skip
        port = MQTT_PORT
    log = (data_dir.parent / "server.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        _wait_for_port(port, process)
        yield process, port
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def _events_logged(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / "edgeprov.db")) as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def run(args: argparse.Namespace, data_dir: Path, ids: list[str], reference: bool) -> dict[str, float]:
    scenario = mqttload.Scenario(args.kind, 0, data_dir / "ca.pem", args.seconds, args.window)
    with _server(data_dir, reference, args.workers) as (process, port):
        scenario = mqttload.Scenario(args.kind, port, scenario.ca, args.seconds, args.window)
        time.sleep(1)
        baseline = mqttload.tree_rss(process.pid)
        started = time.monotonic()
        fleet = mqttload.start(scenario, ids, KEY, args.processes)
        connect_seconds = time.monotonic() - started
        loaded = mqttload.tree_rss(process.pid)
        figures: dict[str, float] = {
            "connected": fleet.connected,
            "failed": fleet.failed,
            "connects_per_s": fleet.connected / connect_seconds,
            "server_rss_mb": loaded / 2**20,
            "kb_per_connection": (loaded - baseline) / max(fleet.connected, 1) / 1024,
        }
        fleet.go()
        if args.kind == "desired" and not reference:
            figures |= _drive_desired(data_dir, ids, args)
        completed, latencies, cpu = fleet.results()
        figures["per_s"] = completed / args.seconds
        figures["generator_cpu_per_process"] = statistics.mean(cpu) / args.seconds if cpu else 0.0
        if latencies:
            figures |= {
                "samples": len(latencies),
                "p50_ms": _percentile(latencies, 0.5) * 1000,
                "p99_ms": _percentile(latencies, 0.99) * 1000,
            }
        fleet.stop()
    if args.kind == "telemetry" and not reference:
        figures["events_in_log"] = _events_logged(data_dir)
    return figures


def _drive_desired(data_dir: Path, ids: list[str], args: argparse.Namespace) -> dict[str, float]:
    """Patch one random connected device's desired properties ``--rate`` times a second."""
    service = json.loads((data_dir / "service.json").read_text())
    fields = dict(part.split("=", 1) for part in service["hubs"]["localhost"]["connectionString"].split(";"))
    token = sas.token_for(fields["HostName"], fields["SharedAccessKey"], 3600, fields["SharedAccessKeyName"])
    sent = 0
    deadline = time.monotonic() + args.seconds - 1
    with httpx.Client(base_url=f"https://127.0.0.1:{HTTPS_PORT}", verify=str(data_dir / "ca.pem")) as http:
        while time.monotonic() < deadline:
            device_id = random.choice(ids)
            body = {"properties": {"desired": {"sent": time.time()}}}
            response = http.patch(
                f"/twins/{device_id}?api-version=2021-04-12", json=body, headers={"Authorization": token}
            )
            response.raise_for_status()
            sent += 1
            time.sleep(1 / args.rate)
    return {"patches_sent": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("idle", "telemetry", "reported", "desired"))
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=8, help="messages in flight per device")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--rate", type=float, default=50.0, help="desired patches per second")
    parser.add_argument("--reference", action="store_true", help="also run against the do-nothing server")
    args = parser.parse_args()
    # Each process (server worker, generator) holds its share of the connections; spread them with
    # --workers and --processes when one process's share would pass the open-file limit.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the server and the generator
    with tempfile.TemporaryDirectory(prefix="edgeprov-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        ids = _create_devices(data_dir, args.devices)
        print(f"command: {' '.join(['python -m bench.mqtt_hub', *sys.argv[1:]])}")
        ours = run(args, data_dir, ids, reference=False)
        print("edgeprov: " + json.dumps({k: round(v, 2) for k, v in ours.items()}))
        if args.reference:
            theirs = run(args, data_dir, ids, reference=True)
            print("reference: " + json.dumps({k: round(v, 2) for k, v in theirs.items()}))
            if theirs.get("per_s"):
                print(f"edgeprov / reference: {ours['per_s'] / theirs['per_s']:.2f}")


if __name__ == "__main__":
    main()
