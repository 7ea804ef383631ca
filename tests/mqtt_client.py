"""A plain MQTT 3.1.1 client over TLS for tests: our own codec on a blocking socket, nothing hidden."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any, TypeVar

from edgeprov import sas
from edgeprov.mqtt import codec
from edgeprov.mqtt.packets import Connack, Connect, Packet, Publish, SubAck

P = TypeVar("P")
API = "?api-version=2021-04-12"


def hub_login(device_id: str, key: str, module_id: str = "", hub: str = "localhost") -> tuple[str, str, str]:
    """(client id, user name, password) the way the SDKs build them."""
    client_id = f"{device_id}/{module_id}" if module_id else device_id
    resource = f"{hub}/devices/{device_id}" + (f"/modules/{module_id}" if module_id else "")
    return client_id, f"{hub}/{client_id}/{API}", sas.token_for(resource, key)


class RawClient:
    def __init__(self, port: int, ca: Path, timeout: float = 15.0) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.decoder = codec.Decoder()
        self.pending: list[Packet] = []
        self.next_id = 0

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Packet | None:
        """The next packet, or None once the server has closed the connection."""
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return None
            if not data:
                return None
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def expect(self, kind: type[P]) -> P:
        packet = self.read()
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
        return packet

    def closed_by_server(self) -> bool:
        """True when the server closes the connection (packets before that are skipped)."""
        while True:
            packet = self.read()
            if packet is None:
                return True

    def connect(
        self, client_id: str, username: str, password: str, clean: bool = True, keep_alive: int = 60
    ) -> Connack:
        self.send(codec.encode_connect(Connect(client_id, username, password, clean, keep_alive)))
        return self.expect(Connack)

    def packet_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def subscribe(self, *filters: str) -> tuple[int, ...]:
        self.send(codec.encode_subscribe(self.packet_id(), tuple((f, 1) for f in filters)))
        return self.expect(SubAck).codes

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.send(codec.encode_publish(topic, payload, qos, self.packet_id() if qos else None))

    def next_publish(self) -> Publish:
        while True:
            packet = self.read()
            assert packet is not None, "the server closed the connection"
            if isinstance(packet, Publish):
                return packet
