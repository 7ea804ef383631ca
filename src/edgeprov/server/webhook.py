"""Calling custom allocation webhooks over HTTPS, with a timeout and a clear failure."""

from __future__ import annotations

import httpx

from edgeprov.errors import GatewayTimeout, InternalError
from edgeprov.jsonutil import loads
from edgeprov.types import JsonObject

MAX_RESPONSE = 96 * 1024


class HttpWebhookCaller:
    def __init__(self, timeout: float) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._timeout = timeout

    async def call(self, url: str, body: JsonObject) -> JsonObject:
        try:
            response = await self._client.post(url, json=body)
        except httpx.TimeoutException:
            raise GatewayTimeout(f"no answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise InternalError(f"cannot reach it ({type(exc).__name__})") from None
        if response.status_code // 100 != 2:
            raise InternalError(f"it answered HTTP {response.status_code}")
        if len(response.content) > MAX_RESPONSE:
            raise InternalError(f"its answer exceeds {MAX_RESPONSE} bytes")
        value = loads(response.content)
        if not isinstance(value, dict):
            raise InternalError("its answer is not a JSON object")
        return value

    async def close(self) -> None:
        await self._client.aclose()
