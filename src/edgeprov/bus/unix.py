"""The bus for one machine: a unix datagram socket per worker in the data directory.

A datagram is one message, delivered whole or not at all, with no connection to keep; a worker
is addressed by its socket's name (its process id). A socket left behind by a dead worker
refuses datagrams and is removed by the first sender that notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path

from edgeprov.bus.base import Handler

log = logging.getLogger("edgeprov.bus")

SUFFIX = ".sock"
# Large enough for the largest message (a 128 KB method payload, JSON-escaped).
BUFFER_BYTES = 4 * 1024 * 1024
MAX_DATAGRAM = 1024 * 1024


class UnixBus:
    def __init__(self, directory: Path, worker: int | None = None) -> None:
        self._directory = directory
        self._worker = worker if worker is not None else os.getpid()
        self._path = directory / f"{self._worker}{SUFFIX}"
        self._receiver: socket.socket | None = None
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        _grow(self._sender, socket.SO_SNDBUF)

    @property
    def worker(self) -> int:
        return self._worker

    def start(self, handler: Handler) -> None:
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(str(self._path))
        receiver.setblocking(False)
        _grow(receiver, socket.SO_RCVBUF)
        self._receiver = receiver
        asyncio.get_running_loop().add_reader(receiver.fileno(), self._drain, handler)

    def _drain(self, handler: Handler) -> None:
        assert self._receiver is not None
        while True:
            try:
                message = self._receiver.recv(MAX_DATAGRAM)
            except BlockingIOError:
                return
            try:
                handler(message)
            except Exception:
                log.exception("a bus message could not be handled")

    def peers(self) -> list[int]:
        try:
            names = os.listdir(self._directory)
        except FileNotFoundError:
            return []
        return [int(n[: -len(SUFFIX)]) for n in names if n.endswith(SUFFIX) and n[: -len(SUFFIX)].isdigit()]

    def broadcast(self, message: bytes) -> None:
        for worker in self.peers():
            if worker != self._worker:
                self.send(worker, message)

    def send(self, worker: int, message: bytes) -> None:
        path = self._directory / f"{worker}{SUFFIX}"
        try:
            self._sender.sendto(message, str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        except OSError as exc:
            # A full queue or an oversized message: the notice is lost, and callers that wait
            # for an answer time out, as they would with a device that never answers.
            log.warning("bus message to worker %d dropped: %s", worker, exc.strerror)

    def close(self) -> None:
        if self._receiver is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self._receiver.fileno())
            self._receiver.close()
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
        self._sender.close()


def _grow(sock: socket.socket, option: int) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, option, BUFFER_BYTES)
