"""``edgeprov serve``: first start, restarts, listeners, TLS, workers and shutdown."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.dps_helpers import create_group, poll, provision, register, token
from tests.support import free_port, running, start_server, unique


def test_first_start_creates_and_reports_the_service(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running(data) as server:
        log = server.log_path.read_text()
        assert f"ID scope: {server.id_scope}" in log
        assert str((data / "service.json").resolve()) in log
        assert str((data / "ca.pem").resolve()) in log
        for secret in ("master.key", "ca.key", "server.key", "service.json"):
            assert stat.S_IMODE((data / secret).stat().st_mode) == 0o600, secret
        service = json.loads((data / "service.json").read_text())
        assert service["dps"]["connectionString"].startswith(
            f"HostName=localhost:{server.https_port};SharedAccessKeyName=provisioningserviceowner;"
        )
        scope, key = server.id_scope, service["dps"]["connectionString"]
        assert server.stop() == 0, "SIGTERM stops the server cleanly"
    with running(data, "--hub-hostname", "localhost", "--hub-hostname", "hub2.example.test") as again:
        assert again.id_scope == scope
        assert again.service["dps"]["connectionString"].split(";")[2] == key.split(";")[2]
        cert = x509.load_pem_x509_certificate((data / "server.pem").read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "hub2.example.test" in names.get_values_for_type(x509.DNSName)
        public_key = cert.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert public_key.curve.name == "secp256r1", "P-256: half the handshake cost of RSA-2048"


def test_a_port_that_cannot_be_bound_names_the_flag(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "edgeprov", "serve", "--data", str(tmp_path / "d"), "--https-port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "choose another port with --https-port N" in result.stderr


@pytest.mark.spec("sdk-clients.md §0")
def test_tls_1_2_and_1_3_are_served_and_older_versions_refused(tmp_path: Path) -> None:
    with running(tmp_path / "data") as server:
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            context = ssl.create_default_context(cafile=str(server.ca))
            context.minimum_version = context.maximum_version = version
            with (
                socket.create_connection(("127.0.0.1", server.https_port)) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                assert tls.version() == name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # asking for TLS 1.1 is the point
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.load_verify_locations(cafile=str(server.ca))
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers("ALL:@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", server.https_port)) as raw, pytest.raises(ssl.SSLError):
            old.wrap_socket(raw, server_hostname="localhost")


def test_several_workers_share_the_listener_and_the_configuration(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", free_port(), free_port(), "--workers", "2")
    try:
        group = create_group(server.dps())
        devices = [unique("w") for _ in range(12)]
        for device in devices:  # a new connection each: the kernel spreads them over the workers
            assert provision(server, device, group.device_key(device))["status"] == "assigned"
        dps = server.dps()
        current = dps.request("GET", f"/enrollmentGroups/{group.id}").json()
        current.pop("attestation")
        disabled = dps.request("PUT", f"/enrollmentGroups/{group.id}", {**current, "provisioningStatus": "disabled"})
        assert disabled.status_code == 200
        for _ in range(12):  # every worker sees the change as soon as it was acknowledged
            device = unique("w")
            authorization = token(server, device, group.device_key(device))
            accepted = register(server, device, authorization).json()
            assert poll(server, device, accepted["operationId"], authorization).json()["status"] == "disabled"
    finally:
        assert server.stop() == 0
