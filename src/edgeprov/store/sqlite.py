"""The embedded default store: one SQLite file in WAL mode.

Reads run on the caller's thread against a connection of its own (WAL readers never wait for
the writer). Write functions queued while the write lock is being taken run together in one
transaction and commit once (see :class:`_GroupCommitWriter`): many registrations per commit
instead of one commit each. A write's future resolves only after its commit, so an answer sent
after ``await store.write(...)`` survives a crash of the process.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import orjson

from edgeprov.dps.model import (
    Attempt,
    AttemptOutcome,
    Enrollment,
    EnrollmentKind,
    LinkedHub,
    Operation,
    RegistrationRecord,
    RegistrationStatus,
)
from edgeprov.errors import InternalError
from edgeprov.hub.configuration import Configuration
from edgeprov.hub.messages import CloudMessage, DeviceEvent
from edgeprov.hub.model import Connection, Device, Module
from edgeprov.hub.twin import Twin
from edgeprov.hub.views import TwinRow
from edgeprov.store.base import AccessPolicy, AttemptFilter, Touch
from edgeprov.store.codec import Codec
from edgeprov.vault import KeyVault

T = TypeVar("T")

SCHEMA_VERSION = 1
MAX_BATCH = 1024
SCHEMA = """
-- Documents of a few hundred bytes live in rowid tables: SQLite keeps WITHOUT ROWID for small rows.
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policies (service TEXT NOT NULL, name TEXT NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (service, name));
CREATE TABLE IF NOT EXISTS hubs (hostname TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS linked_hubs (hostname TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS enrollments (kind TEXT NOT NULL, key TEXT NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS registrations (key TEXT PRIMARY KEY, enrollment TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS registrations_by_enrollment ON registrations (enrollment, key);
CREATE TABLE IF NOT EXISTS operations (id TEXT PRIMARY KEY, created REAL NOT NULL, doc BLOB NOT NULL,
    body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS operations_by_age ON operations (created);
CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, registration TEXT NOT NULL, enrollment TEXT,
    failed INTEGER NOT NULL, doc BLOB NOT NULL);
-- No index on the attempt log: every registration appends to it, while a listing scans at most
-- the retained attempts (100,000 by default), newest first, in milliseconds.
CREATE TABLE IF NOT EXISTS devices (hub TEXT NOT NULL, id TEXT NOT NULL, enabled INTEGER NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (hub, id));
CREATE TABLE IF NOT EXISTS modules (hub TEXT NOT NULL, device TEXT NOT NULL, id TEXT NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (hub, device, id));
CREATE TABLE IF NOT EXISTS twins (hub TEXT NOT NULL, device TEXT NOT NULL, module TEXT NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (hub, device, module));
CREATE TABLE IF NOT EXISTS configurations (hub TEXT NOT NULL, id TEXT NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (hub, id));
CREATE TABLE IF NOT EXISTS presence (hub TEXT NOT NULL, device TEXT NOT NULL, module TEXT NOT NULL,
    session TEXT NOT NULL, worker INTEGER NOT NULL, connected INTEGER NOT NULL, updated REAL NOT NULL, activity REAL,
    PRIMARY KEY (hub, device, module)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (hub TEXT NOT NULL, client TEXT NOT NULL, subscriptions BLOB NOT NULL,
    PRIMARY KEY (hub, client)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS c2d (seq INTEGER PRIMARY KEY AUTOINCREMENT, hub TEXT NOT NULL, device TEXT NOT NULL,
    expiry REAL NOT NULL, doc BLOB NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS c2d_by_device ON c2d (hub, device, seq);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, hub TEXT NOT NULL, device TEXT NOT NULL,
    module TEXT NOT NULL, enqueued REAL NOT NULL, properties BLOB NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_device ON events (hub, device, seq);
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit reaches the OS before we answer, so it survives a crash of
    # the process (kill -9); only a power loss can take the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


class SqliteTx:
    """The :class:`edgeprov.store.base.Tx` of one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection, codec: Codec) -> None:
        self._db = conn
        self._codec = codec
        self.config_changed = False

    def _one(self, sql: str, *args: Any) -> Any:
        row = self._db.execute(sql, args).fetchone()
        return row[0] if row else None

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self, name: str) -> str | None:
        value: str | None = self._one("SELECT value FROM meta WHERE name = ?", name)
        return value

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def config_version(self) -> int:
        return int(self.get_meta("config_version") or 0)

    def bump_config_version(self) -> None:
        self.set_meta("config_version", str(self.config_version() + 1))
        self.config_changed = True

    # -- policies and hubs ----------------------------------------------------------------------
    def get_policy(self, service: str, name: str) -> AccessPolicy | None:
        doc = self._one("SELECT doc FROM policies WHERE service = ? AND name = ?", service, name)
        return self._codec.decode(AccessPolicy, doc) if doc else None

    def list_policies(self, service: str) -> list[AccessPolicy]:
        rows = self._db.execute("SELECT doc FROM policies WHERE service = ? ORDER BY name", (service,))
        return [self._codec.decode(AccessPolicy, doc) for (doc,) in rows]

    def put_policy(self, policy: AccessPolicy) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO policies (service, name, doc) VALUES (?, ?, ?)",
            (policy.service, policy.name, self._codec.encode(policy)),
        )

    def list_hubs(self) -> list[str]:
        return [name for (name,) in self._db.execute("SELECT hostname FROM hubs ORDER BY created, hostname")]

    def add_hub(self, hostname: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO hubs (hostname, created) VALUES (?, ?)", (hostname, time.time()))

    def list_linked_hubs(self) -> list[LinkedHub]:
        rows = self._db.execute("SELECT doc FROM linked_hubs ORDER BY hostname")
        return [self._codec.decode(LinkedHub, doc) for (doc,) in rows]

    def put_linked_hub(self, hub: LinkedHub) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO linked_hubs (hostname, doc) VALUES (?, ?)",
            (hub.hostname, self._codec.encode(hub)),
        )

    def delete_linked_hub(self, hostname: str) -> bool:
        return self._db.execute("DELETE FROM linked_hubs WHERE hostname = ?", (hostname,)).rowcount > 0

    # -- enrollments -------------------------------------------------------------------------------
    def get_enrollment(self, kind: EnrollmentKind, key: str) -> Enrollment | None:
        doc = self._one("SELECT doc FROM enrollments WHERE kind = ? AND key = ?", str(kind), key)
        return self._codec.decode(Enrollment, doc) if doc else None

    def put_enrollment(self, enrollment: Enrollment) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO enrollments (kind, key, doc) VALUES (?, ?, ?)",
            (str(enrollment.kind), enrollment.key, self._codec.encode(enrollment)),
        )

    def delete_enrollment(self, kind: EnrollmentKind, key: str) -> bool:
        sql = "DELETE FROM enrollments WHERE kind = ? AND key = ?"
        return self._db.execute(sql, (str(kind), key)).rowcount > 0

    def list_enrollments(self, kind: EnrollmentKind, after: str, limit: int) -> list[Enrollment]:
        rows = self._db.execute(
            "SELECT doc FROM enrollments WHERE kind = ? AND key > ? ORDER BY key LIMIT ?",
            (str(kind), after, limit),
        )
        return [self._codec.decode(Enrollment, doc) for (doc,) in rows]

    # -- registrations, operations, attempts ----------------------------------------------------------
    def get_registration(self, key: str) -> RegistrationRecord | None:
        doc = self._one("SELECT doc FROM registrations WHERE key = ?", key)
        return self._codec.decode(RegistrationRecord, doc) if doc else None

    def put_registration(self, record: RegistrationRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO registrations (key, enrollment, doc) VALUES (?, ?, ?)",
            (record.key, record.enrollment.lower(), self._codec.encode(record)),
        )

    def delete_registration(self, key: str) -> bool:
        return self._db.execute("DELETE FROM registrations WHERE key = ?", (key,)).rowcount > 0

    def list_registrations(self, enrollment: str | None, after: str, limit: int) -> list[RegistrationRecord]:
        if enrollment is None:
            sql, args = "SELECT doc FROM registrations WHERE key > ? ORDER BY key LIMIT ?", (after, limit)
        else:
            sql = "SELECT doc FROM registrations WHERE enrollment = ? AND key > ? ORDER BY key LIMIT ?"
            args = (enrollment.lower(), after, limit)  # type: ignore[assignment]
        return [self._codec.decode(RegistrationRecord, doc) for (doc,) in self._db.execute(sql, args)]

    def get_operation(self, operation_id: str) -> Operation | None:
        row = self._db.execute("SELECT doc, body FROM operations WHERE id = ?", (operation_id,)).fetchone()
        if row is None:
            return None
        fields = self._codec.decode(_StoredOperation, row[0])
        return Operation(
            operation_id, fields.registration_key, fields.enrollment, fields.status, row[1], fields.created
        )

    def put_operation(self, operation: Operation) -> None:
        stored = _StoredOperation(operation.registration_key, operation.enrollment, operation.status, operation.created)
        self._db.execute(
            "INSERT OR REPLACE INTO operations (id, created, doc, body) VALUES (?, ?, ?, ?)",
            (operation.operation_id, operation.created, self._codec.encode(stored), operation.body),
        )

    def prune_operations(self, created_before: float) -> int:
        return self._db.execute("DELETE FROM operations WHERE created < ?", (created_before,)).rowcount

    def add_attempt(self, attempt: Attempt) -> None:
        self._db.execute(
            "INSERT INTO attempts (registration, enrollment, failed, doc) VALUES (?, ?, ?, ?)",
            (
                attempt.registration_id.lower(),
                attempt.enrollment.lower() if attempt.enrollment else None,
                attempt.outcome is not AttemptOutcome.ASSIGNED,
                self._codec.encode(attempt),
            ),
        )

    def list_attempts(self, query: AttemptFilter) -> list[Attempt]:
        clauses, args = [], []
        if query.registration_id:
            clauses.append("registration = ?")
            args.append(query.registration_id.lower())
        if query.enrollment:
            clauses.append("enrollment = ?")
            args.append(query.enrollment.lower())
        if query.failed_only:
            clauses.append("failed = 1")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT doc FROM attempts {where} ORDER BY id DESC LIMIT ?"  # noqa: S608 - clauses are constants
        rows = self._db.execute(sql, (*args, query.limit))
        return [self._codec.decode(Attempt, doc) for (doc,) in rows]

    def prune_attempts(self, keep: int) -> int:
        newest = self._one("SELECT max(id) FROM attempts")
        if newest is None:
            return 0
        return self._db.execute("DELETE FROM attempts WHERE id <= ?", (newest - keep,)).rowcount

    # -- hub registry -----------------------------------------------------------------------------------
    def get_device(self, hub: str, device_id: str) -> Device | None:
        row = self._db.execute(
            f"SELECT d.doc, {_PRESENCE} FROM devices d {_DEVICE_PRESENCE} "  # noqa: S608
            "WHERE d.hub = ? AND d.id = ?",
            (hub, device_id),
        ).fetchone()
        return self._device(row) if row else None

    def _device(self, row: tuple[Any, ...]) -> Device:
        return replace(self._codec.decode(Device, row[0]), connection=_connection(row))

    def _module(self, row: tuple[Any, ...]) -> Module:
        return replace(self._codec.decode(Module, row[0]), connection=_connection(row))

    def put_device(self, hub: str, device: Device) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO devices (hub, id, enabled, doc) VALUES (?, ?, ?, ?)",
            (hub, device.device_id, device.enabled, self._codec.encode(device)),
        )

    def add_device(self, hub: str, device: Device) -> bool:
        inserted = self._db.execute(
            "INSERT INTO devices (hub, id, enabled, doc) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (hub, device.device_id, device.enabled, self._codec.encode(device)),
        )
        return inserted.rowcount == 1

    def delete_device(self, hub: str, device_id: str) -> bool:
        deleted = self._db.execute("DELETE FROM devices WHERE hub = ? AND id = ?", (hub, device_id)).rowcount > 0
        self._db.execute("DELETE FROM modules WHERE hub = ? AND device = ?", (hub, device_id))
        for table in ("twins", "c2d", "presence"):
            self._db.execute(f"DELETE FROM {table} WHERE hub = ? AND device = ?", (hub, device_id))  # noqa: S608
        # A device created again under the same id starts without the old sessions' subscriptions.
        self._db.execute(
            "DELETE FROM sessions WHERE hub = ? AND (client = ? OR substr(client, 1, ?) = ?)",
            (hub, device_id, len(device_id) + 1, f"{device_id}/"),
        )
        return deleted

    def list_devices(self, hub: str, after: str, limit: int) -> list[Device]:
        rows = self._db.execute(
            f"SELECT d.doc, {_PRESENCE} FROM devices d {_DEVICE_PRESENCE} "  # noqa: S608
            "WHERE d.hub = ? AND d.id > ? ORDER BY d.id LIMIT ?",
            (hub, after, limit),
        )
        return [self._device(row) for row in rows]

    def count_devices(self, hub: str) -> tuple[int, int]:
        row = self._db.execute("SELECT count(*), coalesce(sum(enabled), 0) FROM devices WHERE hub = ?", (hub,))
        total, enabled = row.fetchone()
        return int(total), int(enabled)

    def get_module(self, hub: str, device_id: str, module_id: str) -> Module | None:
        row = self._db.execute(
            f"SELECT d.doc, {_PRESENCE} FROM modules d {_MODULE_PRESENCE} "  # noqa: S608
            "WHERE d.hub = ? AND d.device = ? AND d.id = ?",
            (hub, device_id, module_id),
        ).fetchone()
        return self._module(row) if row else None

    def put_module(self, hub: str, module: Module) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO modules (hub, device, id, doc) VALUES (?, ?, ?, ?)",
            (hub, module.device_id, module.module_id, self._codec.encode(module)),
        )

    def delete_module(self, hub: str, device_id: str, module_id: str) -> bool:
        args = (hub, device_id, module_id)
        self._db.execute("DELETE FROM twins WHERE hub = ? AND device = ? AND module = ?", args)
        self._db.execute("DELETE FROM presence WHERE hub = ? AND device = ? AND module = ?", args)
        self._db.execute("DELETE FROM sessions WHERE hub = ? AND client = ?", (hub, f"{device_id}/{module_id}"))
        return self._db.execute("DELETE FROM modules WHERE hub = ? AND device = ? AND id = ?", args).rowcount > 0

    def list_modules(self, hub: str, device_id: str) -> list[Module]:
        rows = self._db.execute(
            f"SELECT d.doc, {_PRESENCE} FROM modules d {_MODULE_PRESENCE} "  # noqa: S608
            "WHERE d.hub = ? AND d.device = ? ORDER BY d.id",
            (hub, device_id),
        )
        return [self._module(row) for row in rows]

    def get_twin(self, hub: str, device_id: str, module_id: str = "") -> Twin | None:
        doc = self._one("SELECT doc FROM twins WHERE hub = ? AND device = ? AND module = ?", hub, device_id, module_id)
        return self._codec.decode(Twin, doc) if doc else None

    def put_twin(self, hub: str, twin: Twin) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO twins (hub, device, module, doc) VALUES (?, ?, ?, ?)",
            (hub, twin.device_id, twin.module_id, self._codec.encode(twin)),
        )

    def list_twins(self, hub: str, after: tuple[str, str], limit: int, modules: bool) -> list[TwinRow]:
        if not modules:
            rows = self._db.execute(
                f"SELECT d.doc, {_PRESENCE}, t.doc FROM twins t JOIN devices d ON d.hub = t.hub AND d.id = t.device "  # noqa: S608
                f"{_DEVICE_PRESENCE} WHERE t.hub = ? AND t.module = '' AND t.device > ? "
                "ORDER BY t.device LIMIT ?",
                (hub, after[0], limit),
            )
            return [TwinRow(self._device(row), None, self._codec.decode(Twin, row[4])) for row in rows]
        rows = self._db.execute(
            f"SELECT d.doc, {_PRESENCE}, dev.doc, t.doc FROM twins t "  # noqa: S608
            "JOIN modules d ON d.hub = t.hub AND d.device = t.device AND d.id = t.module "
            f"JOIN devices dev ON dev.hub = t.hub AND dev.id = t.device {_MODULE_PRESENCE} "
            "WHERE t.hub = ? AND t.module != '' AND (t.device, t.module) > (?, ?) "
            "ORDER BY t.device, t.module LIMIT ?",
            (hub, *after, limit),
        )
        devices: dict[bytes, Device] = {}  # a device's modules come together: decode it once
        found = []
        for row in rows:
            device = devices.get(row[4]) or devices.setdefault(row[4], self._codec.decode(Device, row[4]))
            found.append(TwinRow(device, self._module(row), self._codec.decode(Twin, row[5])))
        return found

    # -- configurations ------------------------------------------------------------------------------
    def get_configuration(self, hub: str, config_id: str) -> Configuration | None:
        doc = self._one("SELECT doc FROM configurations WHERE hub = ? AND id = ?", hub, config_id)
        return self._codec.decode(Configuration, doc) if doc else None

    def put_configuration(self, hub: str, configuration: Configuration) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO configurations (hub, id, doc) VALUES (?, ?, ?)",
            (hub, configuration.config_id, self._codec.encode(configuration)),
        )

    def delete_configuration(self, hub: str, config_id: str) -> bool:
        sql = "DELETE FROM configurations WHERE hub = ? AND id = ?"
        return self._db.execute(sql, (hub, config_id)).rowcount > 0

    def list_configurations(self, hub: str, limit: int) -> list[Configuration]:
        rows = self._db.execute("SELECT doc FROM configurations WHERE hub = ? ORDER BY id LIMIT ?", (hub, limit))
        return [self._codec.decode(Configuration, doc) for (doc,) in rows]

    # -- connections and sessions ------------------------------------------------------------------------
    def set_connected(self, hub: str, device_id: str, module_id: str, session: str, worker: int, now: float) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO presence (hub, device, module, session, worker, connected, updated, activity) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            (hub, device_id, module_id, session, worker, now, now),
        )

    def set_disconnected(self, hub: str, device_id: str, module_id: str, session: str, now: float) -> bool:
        cursor = self._db.execute(
            "UPDATE presence SET connected = 0, updated = ?, activity = max(coalesce(activity, 0), ?) "
            "WHERE hub = ? AND device = ? AND module = ? AND session = ?",
            (now, now, hub, device_id, module_id, session),
        )
        return cursor.rowcount > 0

    def record_activity(self, touches: Sequence[Touch]) -> None:
        self._db.executemany(
            "UPDATE presence SET activity = max(coalesce(activity, 0), ?) "
            "WHERE hub = ? AND device = ? AND module = ? AND session = ?",
            [(t.time, t.hub, t.device_id, t.module_id, t.session) for t in touches],
        )

    def connected_workers(self) -> list[int]:
        return [w for (w,) in self._db.execute("SELECT DISTINCT worker FROM presence WHERE connected = 1")]

    def disconnect_workers(self, workers: Sequence[int] | None, now: float) -> int:
        if workers is None:
            return self._db.execute(
                "UPDATE presence SET connected = 0, updated = ? WHERE connected = 1", (now,)
            ).rowcount
        marks = ",".join("?" * len(workers))
        return self._db.execute(
            f"UPDATE presence SET connected = 0, updated = ? WHERE connected = 1 AND worker IN ({marks})",  # noqa: S608
            (now, *workers),
        ).rowcount

    def count_connected(self, hub: str) -> int:
        sql = "SELECT count(*) FROM presence WHERE hub = ? AND module = '' AND connected = 1"
        return int(self._one(sql, hub))

    def get_session(self, hub: str, client_id: str) -> dict[str, int] | None:
        doc = self._one("SELECT subscriptions FROM sessions WHERE hub = ? AND client = ?", hub, client_id)
        return dict(orjson.loads(doc)) if doc else None

    def put_session(self, hub: str, client_id: str, subscriptions: dict[str, int]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sessions (hub, client, subscriptions) VALUES (?, ?, ?)",
            (hub, client_id, orjson.dumps(subscriptions)),
        )

    def delete_session(self, hub: str, client_id: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE hub = ? AND client = ?", (hub, client_id))

    # -- messages ------------------------------------------------------------------------------------------
    def add_c2d(self, hub: str, message: CloudMessage) -> None:
        doc = orjson.dumps([message.message_id, message.properties, message.enqueued])
        self._db.execute(
            "INSERT INTO c2d (hub, device, expiry, doc, body) VALUES (?, ?, ?, ?, ?)",
            (hub, message.device_id, message.expiry, doc, message.body),
        )

    def count_c2d(self, hub: str, device_id: str) -> int:
        return int(self._one("SELECT count(*) FROM c2d WHERE hub = ? AND device = ?", hub, device_id))

    def list_c2d(self, hub: str, device_id: str, now: float, limit: int) -> list[CloudMessage]:
        self._db.execute("DELETE FROM c2d WHERE hub = ? AND device = ? AND expiry < ?", (hub, device_id, now))
        rows = self._db.execute(
            "SELECT seq, expiry, doc, body FROM c2d WHERE hub = ? AND device = ? ORDER BY seq LIMIT ?",
            (hub, device_id, limit),
        )
        messages = []
        for seq, expiry, doc, body in rows:
            message_id, properties, enqueued = orjson.loads(doc)
            props = tuple((k, v) for k, v in properties)
            messages.append(CloudMessage(device_id, message_id, body, props, enqueued, expiry, seq))
        return messages

    def delete_c2d(self, hub: str, device_id: str, sequence: int) -> bool:
        sql = "DELETE FROM c2d WHERE hub = ? AND device = ? AND seq = ?"
        return self._db.execute(sql, (hub, device_id, sequence)).rowcount > 0

    def purge_c2d(self, hub: str, device_id: str) -> int:
        return self._db.execute("DELETE FROM c2d WHERE hub = ? AND device = ?", (hub, device_id)).rowcount

    def add_events(self, hub: str, events: Sequence[DeviceEvent]) -> None:
        self._db.executemany(
            "INSERT INTO events (hub, device, module, enqueued, properties, body) VALUES (?, ?, ?, ?, ?, ?)",
            [(hub, e.device_id, e.module_id, e.enqueued, orjson.dumps(e.properties), e.body) for e in events],
        )

    def list_events(self, hub: str, after: int, since: float, device_id: str | None, limit: int) -> list[DeviceEvent]:
        device_clause = "AND device = ?" if device_id is not None else ""
        rows = self._db.execute(
            "SELECT seq, device, module, enqueued, properties, body FROM events "  # noqa: S608 - constant clause
            f"WHERE hub = ? {device_clause} AND seq > ? AND enqueued >= ? ORDER BY seq LIMIT ?",
            (hub, *((device_id,) if device_id is not None else ()), after, since, limit),
        )
        return [
            DeviceEvent(device, module, enqueued, tuple((k, v) for k, v in orjson.loads(props)), body, seq)
            for seq, device, module, enqueued, props, body in rows
        ]

    def last_event(self, hub: str) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM events WHERE hub = ?", hub))

    def prune_events(self, keep: int) -> int:
        pruned = 0
        for (hub,) in self._db.execute("SELECT hostname FROM hubs").fetchall():
            cut = self._one("SELECT seq FROM events WHERE hub = ? ORDER BY seq DESC LIMIT 1 OFFSET ?", hub, keep)
            if cut is not None:
                pruned += self._db.execute("DELETE FROM events WHERE hub = ? AND seq <= ?", (hub, cut)).rowcount
        return pruned


_PRESENCE = "p.connected, p.updated, p.activity"
_DEVICE_PRESENCE = "LEFT JOIN presence p ON p.hub = d.hub AND p.device = d.id AND p.module = ''"
_MODULE_PRESENCE = "LEFT JOIN presence p ON p.hub = d.hub AND p.device = d.device AND p.module = d.id"


def _connection(row: tuple[Any, ...]) -> Connection:
    connected, updated, activity = row[1:4]
    return Connection(bool(connected), updated, activity)


@dataclass(frozen=True, slots=True)
class _StoredOperation:
    registration_key: str
    enrollment: str
    status: RegistrationStatus
    created: float


class SqliteStore:
    """:class:`edgeprov.store.base.Store` over one SQLite file."""

    def __init__(self, path: Path, vault: KeyVault) -> None:
        self.path = path
        self._codec = Codec(vault)
        self._migrate()
        self._reader = SqliteTx(connect(path), self._codec)
        self._version = _SharedCounter(path.with_name(path.name + ".version"), self._reader.config_version())
        self._writer = _GroupCommitWriter(path, self._codec, self._version)

    def _migrate(self) -> None:
        """Create what is missing: every statement is idempotent, so a data directory written by an
        earlier build of this schema version gains the tables added since."""
        conn = connect(self.path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InternalError(
                    f"{self.path} was written by a newer edgeprov (schema {version}, this one knows {SCHEMA_VERSION})"
                )
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        finally:
            conn.close()

    def config_version(self) -> int:
        return self._version.value

    async def read(self, fn: Callable[[SqliteTx], T]) -> T:
        return fn(self._reader)

    async def write(self, fn: Callable[[SqliteTx], T]) -> T:
        return await self._writer.submit(fn)

    def write_blocking(self, fn: Callable[[SqliteTx], T]) -> T:
        conn = connect(self.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = SqliteTx(conn, self._codec)
            result = fn(tx)
            conn.execute("COMMIT")
            if tx.config_changed:
                self._version.publish(tx.config_version())
            return result
        finally:
            conn.close()

    def close(self) -> None:
        self._writer.stop()
        self._version.close()


class _SharedCounter:
    """The configuration version, shared by every process using the database through a mapped file.

    Reading it costs a memory load instead of a query on every registration. The writer publishes
    a new version after the commit that made it and before anyone hears the commit succeeded, so
    once an operator's change is acknowledged every worker's next request sees it.
    """

    def __init__(self, path: Path, initial: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _COUNTER.size:
                os.ftruncate(fd, _COUNTER.size)
            self._map = mmap.mmap(fd, _COUNTER.size)
        finally:
            os.close(fd)
        if self.value < initial:
            self.publish(initial)

    @property
    def value(self) -> int:
        return int(_COUNTER.unpack_from(self._map, 0)[0])

    def publish(self, version: int) -> None:
        if version > self.value:
            _COUNTER.pack_into(self._map, 0, version)

    def close(self) -> None:
        self._map.close()


_COUNTER = struct.Struct("<Q")


class _GroupCommitWriter:
    """Runs queued write functions in one transaction per batch, then commits.

    The functions run on the loop's own thread: a separate writer thread would make the domain
    code in it fight the request handling for the GIL, which measured twice as costly as running
    the batch in place. Only taking the database's write lock happens on a helper thread: another
    process may hold it, and while this one waits its loop keeps serving requests (whose writes
    join the batch) instead of stalling; with two workers the wait was a third of each one's time.
    The commit only appends to the write-ahead log (no fsync with synchronous=NORMAL); the fsync
    of a checkpoint happens on a thread of its own.
    """

    def __init__(self, path: Path, codec: Codec, version: _SharedCounter) -> None:
        self._version = version
        self._tx = SqliteTx(connect(path), codec)
        self._conn = self._tx._db
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._pending: list[_Queued] = []
        self._locking: asyncio.Future[None] | None = None
        self._locker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-lock")
        self._closed = False
        self._checkpointer = _Checkpointer(path)

    def submit(self, fn: Callable[[SqliteTx], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._pending and self._locking is None:
            loop.call_soon(self._lock, loop)  # writes queued in this loop turn join the batch
        self._pending.append((fn, future))
        return future

    def stop(self) -> None:
        self._closed = True
        self._locker.shutdown(wait=True)
        if self._locking is not None or self._pending:
            self._run_pending()
        self._checkpointer.stop()
        self._conn.close()

    def _lock(self, loop: asyncio.AbstractEventLoop) -> None:
        self._locking = loop.run_in_executor(self._locker, self._begin)
        self._locking.add_done_callback(self._locked)

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _locked(self, locking: asyncio.Future[None]) -> None:
        if self._closed:
            return  # stop() committed what was queued
        error = locking.exception()
        if error is not None:
            batch, self._pending, self._locking = self._pending, [], None
            _settle(_refused(batch, error))
            return
        self._run_pending()
        self._checkpointer.nudge()
        if self._pending:
            self._lock(asyncio.get_running_loop())

    def _run_pending(self) -> None:
        """Run what is queued inside the transaction the lock began (or a new one), and commit."""
        batch, self._pending, self._locking = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:], None
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")
        _settle(self._commit(batch))

    def _commit(self, batch: list[_Queued]) -> list[_Outcome]:
        try:
            outcomes = self._run_batch(batch)
            self._conn.execute("COMMIT")
            if self._tx.config_changed:
                self._version.publish(self._tx.config_version())
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            outcomes = _refused(batch, exc)
        return outcomes

    def _run_batch(self, batch: list[_Queued]) -> list[_Outcome]:
        """Run the batch's functions; one that raises leaves no trace and fails alone.

        Most batches are all successes, so they run under one savepoint instead of one per
        function (two statements each); only when one raises is the batch rolled back to it (the
        write lock stays held) and run again, each function under its own savepoint.
        """
        outcomes: list[_Outcome] = []
        self._tx.config_changed = False
        self._conn.execute("SAVEPOINT batch")
        try:
            outcomes.extend((future, fn(self._tx), None) for fn, future in batch)
        except Exception:
            self._conn.execute("ROLLBACK TO batch")
        else:
            return outcomes
        finally:
            self._conn.execute("RELEASE batch")
        outcomes.clear()
        self._tx.config_changed = False
        for fn, future in batch:
            self._conn.execute("SAVEPOINT op")
            try:
                outcomes.append((future, fn(self._tx), None))
                self._conn.execute("RELEASE op")
            except Exception as exc:
                self._conn.execute("ROLLBACK TO op")
                self._conn.execute("RELEASE op")
                outcomes.append((future, None, exc))
        return outcomes


_Queued = tuple[Callable[[SqliteTx], Any], asyncio.Future[Any]]  # a write function and its caller's future
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def _refused(batch: list[_Queued], error: BaseException) -> list[_Outcome]:
    failure = InternalError(f"the database refused the write: {error}")
    return [(future, None, failure) for _, future in batch]


def _settle(outcomes: list[_Outcome]) -> None:
    for future, value, error in outcomes:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


class _Checkpointer:
    """Copies the write-ahead log into the database file on its own thread, once it has grown."""

    WAL_BYTES = 16 * 1024 * 1024

    def __init__(self, path: Path) -> None:
        self._wal = path.with_name(path.name + "-wal")
        self._conn = connect(path)
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)
        self._conn.close()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            try:
                if self._wal.stat().st_size >= self.WAL_BYTES:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except (OSError, sqlite3.Error):
                continue  # the next nudge tries again; a busy or missing WAL is not an error
