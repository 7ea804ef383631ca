"""A reference MQTT server that answers without doing anything: the load generator's ceiling.

It accepts every CONNECT, grants every subscription, acknowledges every QoS 1 PUBLISH at once and
answers reported patches with a 204, on the same TLS settings, codec and event loop as edgeprov.
What the generator reaches against it is what the generator can do; edgeprov's figure is shown
as a ratio of it.

    python -m bench.mqtt_reference --data DIR --port N
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from pathlib import Path
from typing import cast

import uvloop

from edgeprov.mqtt import codec, packets
from edgeprov.mqtt.packets import Connect, Publish, Subscribe
from edgeprov.tls import TlsFiles, server_context


class Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self.decoder = codec.Decoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        out = []
        for packet in self.decoder.feed(data):
            if isinstance(packet, Connect):
                out.append(codec.encode_connack(packets.ConnackCode.ACCEPTED))
            elif isinstance(packet, Subscribe):
                out.append(codec.encode_suback(packet.packet_id, tuple(1 for _ in packet.topics)))
            elif isinstance(packet, Publish) and packet.packet_id is not None:
                out.append(codec.encode_puback(packet.packet_id))
                if packet.topic.startswith("$iothub/twin/PATCH/properties/reported/"):
                    rid = packet.topic.split("$rid=", 1)[1]
                    out.append(codec.encode_publish(f"$iothub/twin/res/204/?$rid={rid}&$version=2", b""))
        if out:
            self.transport.write(b"".join(out))


async def serve(data_dir: str, port: int) -> None:
    files = TlsFiles.in_dir(Path(data_dir))
    sock = socket.create_server(("127.0.0.1", port), backlog=4096)
    server = await asyncio.get_running_loop().create_server(
        Echo, sock=sock, ssl=server_context(files.server_cert, files.server_key), backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.data, args.port))


if __name__ == "__main__":
    main()
