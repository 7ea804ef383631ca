"""Drive the official Python IoTHubDeviceClient (unchanged) through the hub flow; print one JSON report.

Run with the SDK harness venv (.cache/sdk/venv/bin/python). Phases:
  online: connect, get twin, patch reported, receive a desired patch made with IoTHubRegistryManager,
          send --messages telemetry messages, answer a direct method invoked with IoTHubRegistryManager
  c2d:    connect and wait for one cloud-to-device message (sent while the device was offline)
The registry manager trusts the server's CA through REQUESTS_CA_BUNDLE.
"""

import argparse
import contextlib
import json
import sys
import threading
import time
from typing import Any


def online(client: Any, registry: Any, device_id: str, messages: int, report: dict[str, Any]) -> None:
    from azure.iot.device import Message, MethodResponse
    from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties

    client.connect()
    report["twin"] = client.get_twin()
    client.patch_twin_reported_properties({"driver": {"phase": "online"}})
    patched = threading.Event()

    def on_patch(patch: dict[str, Any]) -> None:
        report["desired_patch"] = patch
        patched.set()

    client.on_twin_desired_properties_patch_received = on_patch
    time.sleep(0.5)  # the handler subscribes lazily; let the SUBACK come back before the service patches
    registry.update_twin(device_id, Twin(properties=TwinProperties(desired={"driverPatch": 7})), "*")
    report["desired_received"] = patched.wait(15)
    for seq in range(messages):
        message = Message(json.dumps({"seq": seq}))
        message.content_type = "application/json"
        message.content_encoding = "utf-8"
        message.custom_properties["seq"] = str(seq)
        client.send_message(message)
    report["sent"] = messages

    def on_method(request: Any) -> None:
        response = MethodResponse.create_from_method_request(request, 200, {"echo": request.payload})
        client.send_method_response(response)

    client.on_method_request_received = on_method
    time.sleep(0.5)
    result = registry.invoke_device_method(
        device_id, CloudToDeviceMethod(method_name="echo", payload={"x": 1}, response_timeout_in_seconds=30)
    )
    report["method"] = {"status": result.status, "payload": result.payload}


def receive_c2d(client: Any, report: dict[str, Any]) -> None:
    received = threading.Event()

    def on_message(message: Any) -> None:
        report["c2d"] = {
            "data": message.data.decode(),
            "properties": message.custom_properties,
            "message_id": message.message_id,
        }
        received.set()

    client.connect()
    client.on_message_received = on_message
    report["c2d_received"] = received.wait(15)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--device-id", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--hub-connection-string")
    ap.add_argument("--websockets", action="store_true")
    ap.add_argument("--phase", choices=("online", "c2d"), required=True)
    ap.add_argument("--messages", type=int, default=100)
    a = ap.parse_args()
    from azure.iot.device import IoTHubDeviceClient

    with open(a.ca) as ca:
        certificate = ca.read()
    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=a.key,
        hostname=a.host,
        device_id=a.device_id,
        server_verification_cert=certificate,
        websockets=a.websockets,
        connection_retry=False,
    )
    report: dict[str, Any] = {"client": "python IoTHubDeviceClient", "phase": a.phase}
    started = time.time()
    try:
        if a.phase == "online":
            from azure.iot.hub import IoTHubRegistryManager

            registry = IoTHubRegistryManager.from_connection_string(a.hub_connection_string)
            online(client, registry, a.device_id, a.messages, report)
        else:
            receive_c2d(client, report)
        report["ok"] = True
    except Exception as exc:
        report.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):  # closing is best effort; the report says what happened
            client.shutdown()
    report["seconds"] = round(time.time() - started, 2)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
