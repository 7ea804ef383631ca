"""First start and every start after it: data directory, ID scope, policies, hubs, certificates.

Everything here is idempotent: a second start finds what the first created and only adds what
new settings ask for (a new ``--hub-hostname`` gets its policies and a certificate naming it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from edgeprov import sas
from edgeprov.api.auth import DPS_RIGHTS, HUB_POLICIES
from edgeprov.dps.model import LinkedHub
from edgeprov.errors import BadRequest
from edgeprov.ids import new_id_scope
from edgeprov.server.settings import ServerSettings
from edgeprov.store.base import DPS_SERVICE, AccessPolicy, Store, Tx
from edgeprov.store.sqlite import SqliteStore
from edgeprov.tls import TlsFiles, ensure_certificates
from edgeprov.vault import KeyVault, write_secret_file

DPS_OWNER = "provisioningserviceowner"
HUB_OWNER = "iothubowner"
SERVICE_FILE = "service.json"
DATABASE_FILE = "edgeprov.db"


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    id_scope: str
    dps_connection_string: str
    hub_connection_strings: dict[str, str]
    created: bool


def open_store(settings: ServerSettings) -> Store:
    vault = KeyVault.load_or_create(settings.data_dir / "master.key")
    if settings.database:
        raise BadRequest("--database: only the embedded SQLite store is available in this release")
    return SqliteStore(settings.data_dir / DATABASE_FILE, vault)


def bootstrap(settings: ServerSettings) -> ServiceInfo:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = open_store(settings)
    try:
        info = store.write_blocking(lambda tx: _initialize(tx, settings))
    finally:
        store.close()
    ensure_certificates(TlsFiles.in_dir(settings.data_dir), settings.hub_hostnames)
    _write_service_file(settings, info)
    return info


def _initialize(tx: Tx, settings: ServerSettings) -> ServiceInfo:
    created = tx.get_meta("id_scope") is None
    # No worker runs yet, so no device is connected, whatever the last run left behind.
    tx.disconnect_workers(None, time.time())
    if created:
        tx.set_meta("id_scope", new_id_scope())
    dps_owner = _ensure_policy(tx, DPS_SERVICE, DPS_OWNER, DPS_RIGHTS)
    hub_strings: dict[str, str] = {}
    https_host = settings.public_host(settings.https_port, 443)
    for hostname in (name.lower() for name in settings.hub_hostnames):
        tx.add_hub(hostname)
        for name, rights in HUB_POLICIES.items():
            policy = _ensure_policy(tx, hostname, name, rights)
            if name == HUB_OWNER:
                host = hostname if settings.https_port == 443 else f"{hostname}:{settings.https_port}"
                hub_strings[hostname] = connection_string(host, policy)
    if created:
        tx.put_linked_hub(LinkedHub(settings.hostname.lower()))
        tx.bump_config_version()
    id_scope = tx.get_meta("id_scope")
    assert id_scope is not None
    return ServiceInfo(id_scope, connection_string(https_host, dps_owner), hub_strings, created)


def _ensure_policy(tx: Tx, service: str, name: str, rights: tuple[str, ...]) -> AccessPolicy:
    policy = tx.get_policy(service, name)
    if policy is None:
        policy = AccessPolicy(service, name, sas.generate_key(32), sas.generate_key(32), rights)
        tx.put_policy(policy)
    return policy


def connection_string(host: str, policy: AccessPolicy) -> str:
    return f"HostName={host};SharedAccessKeyName={policy.name};SharedAccessKey={policy.primary_key}"


def _write_service_file(settings: ServerSettings, info: ServiceInfo) -> None:
    """What the admin CLI on this machine needs to reach the service (mode 0600: it holds keys)."""
    content = {
        "idScope": info.id_scope,
        "caCertificate": str(TlsFiles.in_dir(settings.data_dir).ca_cert.resolve()),
        "globalEndpoint": f"https://{settings.public_host(settings.https_port, 443)}",
        "mqttPort": settings.mqtt_port,
        "dps": {"connectionString": info.dps_connection_string},
        "hubs": {name: {"connectionString": cs} for name, cs in info.hub_connection_strings.items()},
    }
    write_secret_file(service_file(settings.data_dir), json.dumps(content, indent=2) + "\n")


def service_file(data_dir: Path) -> Path:
    return data_dir / SERVICE_FILE
