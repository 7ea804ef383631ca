"""Registrations per second through the HTTPS device API, against a reference on the same stack.

    .venv/bin/python -m bench.provision [--devices 50000] [--clients 64] [--workers 2] [--rounds 3] [--new-connections]

Starts ``edgeprov serve`` (SQLite, ``--workers``), creates one enrollment group, pre-computes a
derived key and a SAS token per device, and drives ``bench/loadgen.c`` (compiled on first use:
one epoll thread, OpenSSL, full certificate verification, no session reuse): each device sends its
register request and polls its operation once, as the official clients do. With
``--new-connections`` every device opens its own TLS connection (a full handshake), as real
devices do. The client side of a handshake costs OpenSSL 3.0 twice the server side's
instructions; no TLS library packaged for Debian does it for much less (``loadgen.c`` gives the
figures, ``bench/handshake_cost/measure.sh`` measures them).

In the same run it starts a minimal reference app on the same stack (uvicorn, uvloop, httptools,
the same certificate and ciphers, the same worker count) that only verifies a SAS token and
answers 202, drives it with the same load generator and concurrency, and prints our
registrations/s as a ratio of its requests/s. The reference also shows the load generator is not
the limit: it drives the reference far faster than the server registers.

The machine is shared and its speed drifts by tens of percent within minutes, so the two are
measured in alternation: ``--rounds`` segments of our load (the devices split evenly), each
between two segments of the reference's; a round's ratio is its registrations/s over the mean of
the reference segments on either side, and the figures printed are the medians over the rounds.

Then it kills the server with SIGKILL under load, restarts it, and checks that every registration
the server acknowledged (202) is stored.

Prints registrations/s, per-registration latency p50/p99 (register sent -> poll answered), and the
server's peak memory (all its processes).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeprov import sas

HERE = Path(__file__).resolve().parent
DURABILITY_LOAD_SECONDS = 3.0
REFERENCE_REQUESTS = 100_000
LOADGEN_SOURCE = HERE / "loadgen.c"
LOADGEN = HERE.parent / ".cache" / "loadgen"


@dataclass(frozen=True)
class Load:
    """What the load generator reports for one run."""

    done: int
    failures: int
    seconds: float
    p50: float
    p99: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loadgen() -> Path:
    if not LOADGEN.exists() or LOADGEN.stat().st_mtime < LOADGEN_SOURCE.stat().st_mtime:
        LOADGEN.parent.mkdir(exist_ok=True)
        subprocess.run(["gcc", "-O2", "-o", str(LOADGEN), str(LOADGEN_SOURCE), "-lssl", "-lcrypto"], check=True)
    return LOADGEN


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class PeakMemory:
    """Samples the resident memory of a process and its children until stopped."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mb(process_tree(self.root)))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


@contextlib.contextmanager
def edgeprov_server(data: Path, port: int, workers: int) -> Iterator[subprocess.Popen[bytes]]:
    log = (data.parent / "server.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeprov", "serve", "--data", str(data), "--https-port", str(port),
         "--mqtt-port", str(free_port()), "--workers", str(workers)],
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        log.close()


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit("server did not start")


def create_group(data: Path) -> tuple[str, str]:
    """Create the enrollment group through the service API; returns (ID scope, group key)."""
    service = json.loads((data / "service.json").read_text())
    group_key = sas.generate_key()
    subprocess.run(
        [sys.executable, "-m", "edgeprov", "dps", "enrollment-group", "create", "--enrollment-id", "bench",
         "--primary-key", group_key, "--secondary-key", sas.generate_key()],
        check=True, env={**os.environ, "EDGEPROV_DATA": str(data)}, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return str(service["idScope"]), group_key


def write_devices(path: Path, scope: str, group_key: str, devices: int, prefix: str) -> Path:
    """Pre-compute every device's derived key and token: the load generator signs nothing."""
    key = base64.b64decode(group_key)
    expiry = int(time.time()) + 24 * 3600
    with path.open("w") as out:
        for n in range(devices):
            registration_id = f"{prefix}-{n:07d}"
            device_key = sas.derive_device_key(key, registration_id)
            token = sas.build_token(f"{scope}/registrations/{registration_id}", device_key, expiry)
            out.write(f"{registration_id} {token}\n")
    return path


def drive(port: int, ca: Path, scope: str, devices: Path, clients: int, mode: str) -> Load:
    args = [str(loadgen()), "localhost", str(port), str(ca), scope, str(devices), str(clients), mode]
    report = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    return Load(report["registrations"], report["failures"], report["seconds"], report["p50"], report["p99"])


@contextlib.contextmanager
def reference_app(workers: int, data: Path, scope: str, group_key: str) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "BENCH_GROUP_KEY": group_key, "BENCH_ID_SCOPE": scope}
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.reference_app:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
         "--no-access-log", "--lifespan", "off", "--ssl-keyfile", str(data / "server.key"),
         "--ssl-certfile", str(data / "server.pem"), "--ssl-ciphers", "ECDHE+AESGCM:ECDHE+CHACHA20"],
        cwd=HERE.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, app)
        yield port
    finally:
        app.terminate()
        app.wait(timeout=30)


def kill_tree(server: subprocess.Popen[bytes]) -> None:
    for pid in process_tree(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.wait()


def durability(
    work: Path, data: Path, port: int, args: argparse.Namespace, scope: str, group_key: str
) -> tuple[int, int]:
    """Kill -9 the server under load; every registration it acknowledged must be there after a restart."""
    prefix = f"kill{os.getpid()}"
    devices = write_devices(work / "kill-devices.txt", scope, group_key, 200_000, prefix)
    acked = work / "acknowledged.txt"
    with edgeprov_server(data, port, args.workers) as server:
        mode = "new" if args.new_connections else "keepalive"
        load = subprocess.Popen(
            [
                str(loadgen()),
                "localhost",
                str(port),
                str(data / "ca.pem"),
                scope,
                str(devices),
                str(args.clients),
                mode,
                str(acked),
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(DURABILITY_LOAD_SECONDS)
        kill_tree(server)
        load.send_signal(signal.SIGTERM)
        load.wait()
    acknowledged = set(acked.read_text().split())
    with edgeprov_server(data, port, args.workers):
        pass
    db = sqlite3.connect(data / "edgeprov.db")
    try:
        stored = {key for (key,) in db.execute("SELECT key FROM registrations WHERE key LIKE ?", (f"{prefix}-%",))}
    finally:
        db.close()
    return len(acknowledged & stored), len(acknowledged)


@dataclass(frozen=True)
class Round:
    ours: Load
    reference: float  # mean requests/s of the reference segments before and after
    server_cpu: float  # seconds of CPU our server used during our segment
    loadgen_cpu: float  # and the load generator

    @property
    def ratio(self) -> float:
        return self.ours.rate / self.reference


def alternate(
    args: argparse.Namespace, data: Path, port: int, scope: str, group_key: str, work: Path
) -> tuple[list[Round], float]:
    """Our rounds, each between two reference segments; returns them and our server's peak memory."""
    mode = "new" if args.new_connections else "keepalive"
    reference_mode = "reference-new" if args.new_connections else "reference"
    sizes = [args.devices // args.rounds + (n < args.devices % args.rounds) for n in range(args.rounds)]
    chunks = [
        write_devices(work / f"devices-{n}.txt", scope, group_key, size, f"bench{os.getpid()}-{n}")
        for n, size in enumerate(sizes)
    ]
    # Each reference segment lasts about as long as one of ours: long enough to be a fair
    # neighbour, short enough that the machine's speed has little time to drift.
    per_segment = min(REFERENCE_REQUESTS // (args.rounds + 1), 2 * sizes[0])
    reference_devices = write_devices(work / "reference.txt", scope, group_key, per_segment, "reference")
    with (
        reference_app(args.workers, data, scope, group_key) as reference_port,
        edgeprov_server(data, port, args.workers) as server,
    ):
        memory = PeakMemory(server.pid)

        def reference() -> float:
            return drive(reference_port, data / "ca.pem", scope, reference_devices, args.clients, reference_mode).rate

        before = reference()
        rounds = []
        for chunk in chunks:
            server_cpu, loadgen_cpu = cpu_seconds(process_tree(server.pid)), children_cpu_seconds()
            ours = drive(port, data / "ca.pem", scope, chunk, args.clients, mode)
            server_cpu = cpu_seconds(process_tree(server.pid)) - server_cpu
            loadgen_cpu = children_cpu_seconds() - loadgen_cpu
            after = reference()
            rounds.append(Round(ours, (before + after) / 2, server_cpu, loadgen_cpu))
            before = after
        return rounds, memory.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=64, help="devices registering at once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="segments of our load, alternating with the reference")
    parser.add_argument("--new-connections", action="store_true", help="one TLS connection per device")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgeprov-bench-"))
    data, port = work / "data", free_port()
    with edgeprov_server(data, port, args.workers):
        scope, group_key = create_group(data)
    rounds, peak_memory = alternate(args, data, port, scope, group_key, work)
    survived, acknowledged = durability(work, data, port, args, scope, group_key)

    loads = [r.ours for r in rounds]
    done, failures, seconds = sum(x.done for x in loads), sum(x.failures for x in loads), sum(x.seconds for x in loads)
    connections = "a new TLS connection per device" if args.new_connections else "kept-alive connections"
    print(
        f"edgeprov provisioning benchmark: {done} devices in {len(rounds)} rounds, {args.clients} concurrent, "
        f"{args.workers} workers, {connections}, SQLite"
    )
    for n, r in enumerate(rounds, 1):
        print(
            f"  round {n}: {r.ours.rate:8.0f} registrations/s, reference {r.reference:8.0f} requests/s, "
            f"ratio {r.ratio:.3f}; p50 {r.ours.p50 * 1000:.1f} ms, p99 {r.ours.p99 * 1000:.1f} ms"
        )
    print(
        f"  registrations/s          {statistics.median(x.rate for x in loads):10.0f}   median of the rounds "
        f"({done} assigned, {failures} failed, {seconds:.1f} s)"
    )
    print(
        f"  latency p50 / p99        {statistics.median(x.p50 for x in loads) * 1000:7.1f} ms / "
        f"{statistics.median(x.p99 for x in loads) * 1000:.1f} ms   (register sent -> poll answered; medians)"
    )
    server_ms = statistics.median(r.server_cpu / r.ours.done for r in rounds) * 1000
    loadgen_ms = statistics.median(r.loadgen_cpu / r.ours.done for r in rounds) * 1000
    cores = os.cpu_count() or 1
    print(
        f"  CPU per registration     {server_ms:10.2f} ms server + {loadgen_ms:.2f} ms load generator (medians): "
        f"{cores} cores cannot do more than {cores / (server_ms + loadgen_ms) * 1000:.0f}/s at that cost"
    )
    print(f"  server peak memory       {peak_memory:10.0f} MB  (all processes)")
    print(
        f"  reference requests/s     {statistics.median(r.reference for r in rounds):10.0f}   (verify SAS, answer 202; "
        "same stack, same load generator; median)"
    )
    print(
        f"  ratio                    {statistics.median(r.ratio for r in rounds):10.2f}   registrations/s per "
        "reference request/s (median of the rounds)"
    )
    print(
        f"  durable after kill -9    {survived} of {acknowledged} acknowledged registrations survived "
        f"(server killed after {DURABILITY_LOAD_SECONDS:.0f} s of load)"
    )
    if args.keep:
        print(f"  working directory        {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
