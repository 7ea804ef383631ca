"""The benchmark's reference: the same stack, doing only what every request must (verify a SAS token).

It verifies the device's token against its key derived from the group key, as the real service
does for a group device, and answers 202; no storage, no allocation.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from edgeprov import sas

GROUP_KEY = base64.b64decode(os.environ.get("BENCH_GROUP_KEY", base64.b64encode(b"0" * 32).decode()))
BODY = b'{"operationId":"5.0000000000000000.reference","status":"assigning"}'
HEADERS = [
    (b"content-length", str(len(BODY)).encode()),
    (b"content-type", b"application/json; charset=utf-8"),
    (b"retry-after", b"1"),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    authorization = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    registration_id = scope["path"].split("/")[3]
    token = sas.SasToken.parse(authorization.decode())
    ok = token.signed_with(sas.derive_device_key(GROUP_KEY, registration_id))
    await send({"type": "http.response.start", "status": 202 if ok else 401, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
