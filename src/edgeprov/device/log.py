"""The runtime's own log: one file in the state directory, written by the agent and by the commands
that change the runtime (``config apply``, ``system reprovision``), read by ``system logs``."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from edgeprov.device.files import PRIVATE_FILE

LOGGER = "edgeprov.device"
MAX_BYTES = 4 * 1024 * 1024
BACKUPS = 2
FOLLOW_POLL = 0.2


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


@contextlib.contextmanager
def runtime_log(path: Path) -> Iterator[logging.Logger]:
    """The runtime's logger, writing to ``path`` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=PRIVATE_FILE, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setFormatter(_UtcFormatter("%(asctime)s [%(levelname)s] - %(message)s"))
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return list(deque(handle, maxlen=lines))
    except FileNotFoundError:
        return []


def follow(path: Path, write: Callable[[str], None], lines: int, keep_going: Callable[[], bool]) -> None:
    """Print the last lines, then every new one, until ``keep_going`` says stop (or Ctrl-C)."""
    position = 0
    with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
        # The last lines and the position after them come from one read, so no line falls between.
        for line in deque(handle, maxlen=lines):
            write(line.decode("utf-8", "replace"))
        position = handle.tell()
    while keep_going():
        size = path.stat().st_size if path.exists() else 0
        if size < position:  # rotated: start the new file from its beginning
            position = 0
        if size > position:
            with path.open("rb") as handle:
                handle.seek(position)
                for line in handle:
                    write(line.decode("utf-8", "replace"))
                position = handle.tell()
        time.sleep(FOLLOW_POLL)
