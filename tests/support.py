"""Test support: a real ``edgeprov serve`` on loopback, the official SDK harness, signed calls."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from edgeprov import sas
from edgeprov.cli.main import main as cli_main

REPO = Path(__file__).resolve().parent.parent
SDK_DIR = Path(os.environ.get("EDGEPROV_SDK_DIR", REPO / ".cache" / "sdk"))
START_TIMEOUT = 30.0


def shared_dir() -> Path:
    """``../shared`` beside the checkout, wherever the checkout is (CI clones elsewhere)."""
    for candidate in (os.environ.get("EDGEPROV_SHARED"), REPO.parent / "shared", "/work/shared"):
        if candidate and (Path(candidate) / "clients").is_dir():
            return Path(candidate)
    raise RuntimeError("cannot find ../shared (set EDGEPROV_SHARED)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str, env: dict[str, str]) -> CliResult:
    """Run the ``edgeprov`` command in this process, with ``env`` added to the environment."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli_main(list(args))
            except SystemExit as exc:
                code = int(exc.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return CliResult(code, out.getvalue(), err.getvalue())


@dataclass
class Server:
    """A running ``edgeprov serve`` and what a test needs to talk to it."""

    data_dir: Path
    https_port: int
    mqtt_port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    extra_args: tuple[str, ...] = ()
    service: dict[str, Any] = field(default_factory=dict)

    @property
    def id_scope(self) -> str:
        return str(self.service["idScope"])

    @property
    def ca(self) -> Path:
        return self.data_dir / "ca.pem"

    @property
    def host(self) -> str:
        return "localhost" if self.https_port == 443 else f"localhost:{self.https_port}"

    @property
    def dps_connection_string(self) -> str:
        return str(self.service["dps"]["connectionString"])

    def hub_connection_string(self, hub: str = "localhost") -> str:
        return str(self.service["hubs"][hub]["connectionString"])

    def cli(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        """Run the ``edgeprov`` command in this process against this server."""
        return run_cli(*args, env={"EDGEPROV_DATA": str(self.data_dir), **(env or {})})

    def cli_ok(self, *args: str) -> CliResult:
        result = self.cli(*args)
        assert result.code == 0, f"edgeprov {' '.join(args)} failed: {result.err}{result.out}"
        return result

    def dps(self) -> ServiceCaller:
        return ServiceCaller(self, self.dps_connection_string)

    def hub(self, hub: str = "localhost") -> ServiceCaller:
        return ServiceCaller(self, self.hub_connection_string(hub))

    def http(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=f"https://127.0.0.1:{self.https_port}", verify=context, timeout=30)

    def database(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'edgeprov.db'}?mode=ro", uri=True)

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self.log.close()

    def start_again(self) -> None:
        """Start a stopped server again on its data and ports: tests of what devices do meanwhile."""
        restarted = start_server(self.data_dir, self.https_port, self.mqtt_port, *self.extra_args)
        self.process, self.log = restarted.process, restarted.log

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"


class ServiceCaller:
    """Signed service-API calls, the way the official service SDKs sign them."""

    def __init__(self, server: Server, connection_string: str) -> None:
        fields = dict(part.split("=", 1) for part in connection_string.split(";"))
        self.host = fields["HostName"]
        self.key_name = fields["SharedAccessKeyName"]
        self.key = fields["SharedAccessKey"]
        self._server = server

    def __enter__(self) -> ServiceCaller:
        return self

    def __exit__(self, *exc: object) -> None:
        return None  # every request has its own client; nothing stays open

    def token(self) -> str:
        return sas.token_for(self.host, self.key, 600, self.key_name)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        api_version: str = "2021-10-01",
    ) -> httpx.Response:
        sep = "&" if "?" in path else "?"
        with self._server.http() as client:
            return client.request(
                method,
                f"{path}{sep}api-version={api_version}",
                json=body,
                headers={"Authorization": self.token(), **(headers or {})},
            )


def start_server(
    data_dir: Path, https_port: int, mqtt_port: int, *extra: str, env: dict[str, str] | None = None
) -> Server:
    log = open(data_dir.parent / f"{data_dir.name}.log", "ab")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeprov",
            "serve",
            "--data",
            str(data_dir),
            "--https-port",
            str(https_port),
            "--mqtt-port",
            str(mqtt_port),
            *extra,
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, **(env or {})},
    )
    server = Server(data_dir, https_port, mqtt_port, process, log, tuple(extra))
    try:
        wait_until_serving(server)
    except RuntimeError:
        server.stop()
        raise
    server.service = json.loads((data_dir / "service.json").read_text())
    return server


def wait_until_serving(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    context = ssl.create_default_context(cafile=None)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"edgeprov serve exited with {server.process.returncode}; see {server.data_dir}.log")
        try:
            with socket.create_connection(("127.0.0.1", server.https_port), timeout=1) as raw, context.wrap_socket(raw):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"edgeprov serve did not start within {START_TIMEOUT} s")


def device_token(id_scope: str, registration_id: str, key_b64: str, ttl: int = 3600) -> str:
    """A registration token encoded the way the Python device SDK encodes it."""
    return sas.token_for(f"{id_scope}/registrations/{registration_id}", key_b64, ttl)


def hub_error(response: httpx.Response) -> str:
    """The cloud's error name from a hub error body: ``{"Message": "ErrorCode:<name>;<text>"}``."""
    message: str = response.json()["Message"]
    return message.split(";", 1)[0].removeprefix("ErrorCode:")


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(4).hex()}"


def dump_state(server: Server, *, ignore: tuple[str, ...] = ("attempts", "operations")) -> dict[str, list[Any]]:
    """Every row of every table but the audit and poll tables: for "nothing changed" checks."""
    with contextlib.closing(server.database()) as db:
        tables = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name not in ignore and not name.startswith("sqlite_")
        ]
        return {name: sorted(db.execute(f"SELECT * FROM {name}").fetchall()) for name in tables}


def attempts(server: Server) -> int:
    with contextlib.closing(server.database()) as db:
        return int(db.execute("SELECT count(*) FROM attempts").fetchone()[0])


@contextlib.contextmanager
def running(data_dir: Path, *extra: str) -> Iterator[Server]:
    server = start_server(data_dir, free_port(), free_port(), *extra)
    try:
        yield server
    finally:
        server.stop()


def run_harness(
    sdk: Path, script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Run one of ../shared/clients' scripts with the official SDKs; returns its JSON report."""
    return run_script(sdk, shared_dir() / "clients" / script, *args, env=env, timeout=timeout)


def run_driver(
    sdk: Path, script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Run one of tests/drivers' scripts (our own flows over the official SDKs); returns its JSON report."""
    return run_script(sdk, REPO / "tests" / "drivers" / script, *args, env=env, timeout=timeout)


def run_script(
    sdk: Path, path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> dict[str, Any]:
    if path.suffix == ".js":
        command = ["node", str(path), *args]
        env = {"NODE_PATH": str(sdk / "node" / "node_modules"), **(env or {})}
    else:
        command = [str(sdk / "venv" / "bin" / "python"), str(path), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError(f"{path.name} printed no report (exit {result.returncode}): {result.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    report["exit_code"] = result.returncode
    report["stderr"] = result.stderr[-2000:]
    return report


def json_stream(text: str) -> list[Any]:
    """Every JSON value in ``text``, one after another (monitor-events prints them indented)."""
    decoder = json.JSONDecoder()
    values, position = [], 0
    while (position := _skip_space(text, position)) < len(text):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
    return values


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position
