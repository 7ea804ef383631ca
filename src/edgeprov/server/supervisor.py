"""``edgeprov serve``: bind the listeners once, then run one worker process per ``--workers``.

The supervisor binds every socket before forking, so a port that cannot be bound fails at once
with the flag that picks another, and the workers share the listeners (the kernel spreads
connections over them). SIGTERM or SIGINT stops the workers cleanly; a worker that dies is
replaced.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType

from edgeprov.errors import EdgeprovError
from edgeprov.server import worker
from edgeprov.server.settings import ServerSettings

STOP_GRACE_SECONDS = 15.0
RESTART_BACKOFF_SECONDS = 1.0


class ListenError(EdgeprovError):
    status, code, name = 500, 500000, "ListenError"


def listen(host: str, port: int, flag: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = "run as root (or grant CAP_NET_BIND_SERVICE) or " if exc.errno == errno.EACCES else ""
        raise ListenError(
            f"cannot listen on {host}:{port}: {exc.strerror}; {hint}choose another port with {flag} N"
        ) from None
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def serve(settings: ServerSettings, announce: Callable[[str], None]) -> int:
    https = listen(settings.host, settings.https_port, "--https-port")
    mqtt = listen(settings.host, settings.mqtt_port, "--mqtt-port")
    announce(
        f"listening on https://{settings.host}:{settings.https_port} and mqtts://{settings.host}:{settings.mqtt_port} "
        f"with {settings.workers} worker(s)"
    )
    sockets = worker.Sockets(https, mqtt)
    if settings.workers <= 1:
        worker.run(settings, sockets)
        return 0
    return _supervise(settings, sockets, announce)


def _supervise(settings: ServerSettings, sockets: worker.Sockets, announce: Callable[[str], None]) -> int:
    children: set[int] = set()
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)
        signal.alarm(int(STOP_GRACE_SECONDS))

    def kill_stragglers(signum: int, _frame: FrameType | None) -> None:
        for pid in children:
            _signal(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGALRM, kill_stragglers)
    for _ in range(settings.workers):
        children.add(_spawn(settings, sockets))
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        if not stopping:
            announce(f"worker {pid} exited ({_describe(status)}); starting another")
            time.sleep(RESTART_BACKOFF_SECONDS)
            children.add(_spawn(settings, sockets))
    return 0


def _spawn(settings: ServerSettings, sockets: worker.Sockets) -> int:
    pid = os.fork()
    if pid == 0:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            signal.signal(signum, signal.SIG_DFL)
        code = 0
        try:
            worker.run(settings, sockets)
        except BaseException:  # a child must never return into the supervisor's loop
            code = 1
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"status {os.waitstatus_to_exitcode(status)}"
