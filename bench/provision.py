"""Registrations per second through the HTTPS device API, against a reference on the same stack.

    .venv/bin/python bench/provision.py [--devices 10000] [--clients 64] [--workers 2] [--new-connections]

Starts ``edgeprov serve`` (SQLite, ``--workers``), creates one enrollment group, pre-computes a
derived key and a SAS token per device, and drives ``wrk`` (one connection per wrk thread, so a
thread's Lua state follows its connection): each device sends its register request and polls its
operation once, as the official clients do. With ``--new-connections`` every device opens its own
TLS connection (the poll carries ``Connection: close``), as real devices do.

In the same run it starts a minimal reference app on the same stack (uvicorn, uvloop, httptools,
the same certificate and ciphers, the same worker count) that only verifies a SAS token and
answers 202, drives it with the same wrk settings, and prints our registrations/s as a ratio of
its requests/s. It then kills the server with SIGKILL, restarts it, and counts the registrations
that survived: every registration answered before the kill must.

Prints registrations/s, per-registration latency p50/p99 (register sent → poll answered), and the
server's peak memory (all its processes).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
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
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local devices, index, phase, operation, started = {}, 0, "put", nil, 0
local latencies, failures, first, last = {}, 0, nil, nil
local acknowledged = nil

function init(args)
  for line in io.lines(dir .. "/devices-" .. tid .. ".txt") do
    local id, token = line:match("^(%S+) (.+)$")
    devices[#devices + 1] = { id = id, token = token }
  end
  acknowledged = io.open(dir .. "/acknowledged-" .. tid .. ".txt", "w")
  acknowledged:setvbuf("full")
end

function request()
  local device = devices[index + (phase == "put" and 1 or 0)]
  if device == nil then
    device = devices[#devices]
  end
  local base = "/" .. scope .. "/registrations/" .. device.id
  if phase == "put" then
    index = index + 1
    started = now()
    if first == nil then first = started end
    return wrk.format("PUT", base .. "/register?api-version=2019-03-31",
      { ["Authorization"] = device.token, ["Content-Type"] = "application/json" },
      '{"registrationId":"' .. device.id .. '"}')
  end
  local headers = { ["Authorization"] = device.token }
  if close == "1" then headers["Connection"] = "close" end
  return wrk.format("GET", base .. "/operations/" .. operation .. "?api-version=2019-03-31", headers)
end

local function finish()
  last = now()
  acknowledged:flush()
  local out = io.open(dir .. "/result-" .. tid .. ".json", "w")
  out:write('{"first":' .. string.format("%.6f", first or last) .. ',"last":' .. string.format("%.6f", last)
    .. ',"failures":' .. failures .. ',"latencies":[' .. table.concat(latencies, ",") .. ']}')
  out:close()
  wrk.thread:stop()
end

function response(status, headers, body)
  if phase == "put" then
    if status == 202 then
      operation = body:match('"operationId":"([^"]+)"')
      acknowledged:write(devices[index].id, "\n")
      phase = "get"
    else
      failures = failures + 1
      if index >= #devices then finish() end
    end
    return
  end
  if status == 200 and body:find('"assigned"', 1, true) then
    latencies[#latencies + 1] = string.format("%.6f", now() - started)
  else
    failures = failures + 1
  end
  phase = "put"
  if index >= #devices then finish() end
end
"""
REFERENCE_SCRIPT = r"""
local tokens, index = {}, 0
function init(args)
  for line in io.lines(dir .. "/devices-" .. tid .. ".txt") do
    local id, token = line:match("^(%S+) (.+)$")
    tokens[#tokens + 1] = { id = id, token = token }
  end
end
function request()
  index = index % #tokens + 1
  local device = tokens[index]
  local headers = { ["Authorization"] = device.token, ["Content-Type"] = "application/json" }
  if close == "1" then headers["Connection"] = "close" end
  return wrk.format("PUT", "/" .. scope .. "/registrations/" .. device.id .. "/register?api-version=2019-03-31",
    headers, '{"registrationId":"' .. device.id .. '"}')
end
"""
SETUP_SCRIPT = r"""
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  thread:set("dir", "{dir}")
  thread:set("scope", "{scope}")
  thread:set("close", "{close}")
  counter = counter + 1
end
"""


@dataclass(frozen=True)
class RunResult:
    registrations: int
    failures: int
    seconds: float
    latencies: list[float]
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.registrations / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        [
            sys.executable,
            "-m",
            "edgeprov",
            "serve",
            "--data",
            str(data),
            "--https-port",
            str(port),
            "--mqtt-port",
            str(free_port()),
            "--workers",
            str(workers),
        ],
        stdout=log,
        stderr=log,
    )
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


def create_group(data: Path, port: int) -> tuple[str, str]:
    """Create the enrollment group through the service API; returns (ID scope, group key)."""
    service = json.loads((data / "service.json").read_text())
    env = {**os.environ, "EDGEPROV_DATA": str(data)}
    group_key = sas.generate_key()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeprov",
            "dps",
            "enrollment-group",
            "create",
            "--enrollment-id",
            "bench",
            "--primary-key",
            group_key,
            "--secondary-key",
            sas.generate_key(),
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return str(service["idScope"]), group_key


def write_devices(work: Path, scope: str, group_key: str, devices: int, clients: int, prefix: str) -> None:
    """Pre-compute every device's derived key and token: the load generator signs nothing."""
    key = base64.b64decode(group_key)
    expiry = int(time.time()) + 24 * 3600
    files = [(work / f"devices-{n}.txt").open("w") for n in range(clients)]
    for n in range(devices):
        registration_id = f"{prefix}-{n:07d}"
        device_key = sas.derive_device_key(key, registration_id)
        token = sas.build_token(f"{scope}/registrations/{registration_id}", device_key, expiry)
        files[n % clients].write(f"{registration_id} {token}\n")
    for handle in files:
        handle.close()


def wrk_script(work: Path, body: str, scope: str, close: bool) -> Path:
    path = work / ("bench.lua" if "finish" in body else "reference.lua")
    setup = SETUP_SCRIPT.replace("{dir}", str(work)).replace("{scope}", scope).replace("{close}", "1" if close else "0")
    path.write_text(setup + body)
    return path


def run_registrations(work: Path, port: int, clients: int, script: Path, server_pid: int) -> RunResult:
    for old in work.glob("result-*.json"):
        old.unlink()
    memory = PeakMemory(server_pid)
    wrk = subprocess.Popen(
        [
            "wrk",
            "-t",
            str(clients),
            "-c",
            str(clients),
            "-d",
            "3600s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            f"https://127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    while len(list(work.glob("result-*.json"))) < clients:
        if wrk.poll() is not None:
            raise SystemExit(f"wrk exited early: {wrk.stdout.read().decode() if wrk.stdout else ''}")
        time.sleep(0.2)
    wrk.send_signal(signal.SIGINT)
    wrk.wait()
    peak = memory.stop()
    results = [json.loads(path.read_text()) for path in work.glob("result-*.json")]
    latencies = [value for result in results for value in result["latencies"]]
    seconds = max(r["last"] for r in results) - min(r["first"] for r in results)
    return RunResult(len(latencies), sum(r["failures"] for r in results), seconds, latencies, peak)


def run_reference(
    work: Path, clients: int, workers: int, seconds: int, scope: str, close: bool, cert: Path, key: Path, group_key: str
) -> float:
    port = free_port()
    env = {**os.environ, "BENCH_GROUP_KEY": group_key, "BENCH_ID_SCOPE": scope}
    app = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.reference_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
            "--ssl-keyfile",
            str(key),
            "--ssl-certfile",
            str(cert),
            "--ssl-ciphers",
            "ECDHE+AESGCM:ECDHE+CHACHA20",
        ],
        cwd=HERE.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, app)
        script = wrk_script(work, REFERENCE_SCRIPT, scope, close)
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(clients),
                "-c",
                str(clients),
                "-d",
                f"{seconds}s",
                "-s",
                str(script),
                f"https://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        app.terminate()
        app.wait(timeout=30)
    if "Non-2xx" in out:
        raise SystemExit(f"the reference app refused requests:\n{out}")
    return float(next(line for line in out.splitlines() if line.startswith("Requests/sec:")).split()[1])


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
    for old in work.glob("acknowledged-*.txt"):
        old.unlink()
    write_devices(work, scope, group_key, max(args.devices, 20_000), args.clients, prefix)
    with edgeprov_server(data, port, args.workers) as server:
        script = wrk_script(work, WRK_SCRIPT, scope, args.new_connections)
        wrk = subprocess.Popen(
            [
                "wrk",
                "-t",
                str(args.clients),
                "-c",
                str(args.clients),
                "-d",
                "3600s",
                "-s",
                str(script),
                f"https://127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(DURABILITY_LOAD_SECONDS)
        kill_tree(server)
        wrk.send_signal(signal.SIGINT)
        wrk.wait()
    acknowledged = {line for path in work.glob("acknowledged-*.txt") for line in path.read_text().split()}
    with edgeprov_server(data, port, args.workers):
        pass
    db = sqlite3.connect(data / "edgeprov.db")
    try:
        stored = {key for (key,) in db.execute("SELECT key FROM registrations WHERE key LIKE ?", (f"{prefix}-%",))}
    finally:
        db.close()
    return len(acknowledged & stored), len(acknowledged)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=64, help="concurrent devices (wrk threads)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--new-connections", action="store_true", help="one TLS connection per device")
    parser.add_argument("--reference-seconds", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgeprov-bench-"))
    data, port = work / "data", free_port()
    prefix = f"bench{os.getpid()}"
    with edgeprov_server(data, port, args.workers) as server:
        scope, group_key = create_group(data, port)
        write_devices(work, scope, group_key, args.devices, args.clients, prefix)
        result = run_registrations(
            work, port, args.clients, wrk_script(work, WRK_SCRIPT, scope, args.new_connections), server.pid
        )
    survived, acknowledged = durability(work, data, port, args, scope, group_key)
    reference = run_reference(
        work,
        args.clients,
        args.workers,
        args.reference_seconds,
        scope,
        args.new_connections,
        data / "server.pem",
        data / "server.key",
        group_key,
    )

    mode = "a new TLS connection per device" if args.new_connections else "kept-alive connections"
    print(
        f"edgeprov provisioning benchmark: {args.devices} devices, {args.clients} concurrent clients, "
        f"{args.workers} workers, {mode}, SQLite"
    )
    print(
        f"  registrations/s          {result.rate:10.0f}   ({result.registrations} assigned, "
        f"{result.failures} failed, {result.seconds:.1f} s)"
    )
    print(
        f"  latency p50 / p99        {statistics.median(result.latencies) * 1000:7.1f} ms / "
        f"{percentile(result.latencies, 0.99) * 1000:.1f} ms   (register sent -> poll answered)"
    )
    print(f"  server peak memory       {result.peak_rss_mb:10.0f} MB  (all processes)")
    print(f"  reference requests/s     {reference:10.0f}   (verify SAS, answer 202; same stack and wrk settings)")
    print(f"  ratio                    {result.rate / reference:10.2f}   registrations/s per reference request/s")
    print(
        f"  durable after kill -9    {survived} of {acknowledged} acknowledged registrations survived "
        f"(server killed after {DURABILITY_LOAD_SECONDS:.0f} s of load)"
    )
    if args.keep:
        print(f"  working directory        {work}")


if __name__ == "__main__":
    main()
