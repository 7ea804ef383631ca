"""``edgeprov hub …`` against the real server: identities, twins, queries, connection strings, configurations."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import Server, unique


def test_device_identity_commands(server: Server) -> None:
    device_id = unique("cli-dev")
    created = server.cli_ok("hub", "device-identity", "create", "-d", device_id, "--edge-enabled").json()
    assert created["capabilities"] == {"iotEdge": True}
    assert "symmetricKey" not in created["authentication"]  # keys only with --show-keys
    keys = server.cli_ok("hub", "device-identity", "show", "-d", device_id, "--show-keys").json()["authentication"][
        "symmetricKey"
    ]
    table = server.cli_ok("hub", "device-identity", "list").out
    assert table.splitlines()[0].split() == ["DEVICE", "ID", "STATUS", "EDGE", "AUTH", "CONNECTION", "LAST", "ACTIVITY"]
    assert device_id in table
    edge_only = server.cli_ok("hub", "device-identity", "list", "--edge-enabled", "-o", "json").json()
    assert device_id in [d["deviceId"] for d in edge_only]
    assert all(d["capabilities"]["iotEdge"] for d in edge_only)
    updated = server.cli_ok(
        "hub", "device-identity", "update", "-d", device_id, "--status", "disabled", "--status-reason", "maintenance"
    ).json()
    assert (updated["status"], updated["statusReason"]) == ("disabled", "maintenance")
    shown = server.cli_ok("hub", "connection-string", "show", "-d", device_id).json()
    assert shown == {
        "connectionString": f"HostName=localhost;DeviceId={device_id};SharedAccessKey={keys['primaryKey']}"
    }
    secondary = server.cli_ok("hub", "connection-string", "show", "-d", device_id, "--key-type", "secondary").json()
    assert secondary["connectionString"].endswith(f"SharedAccessKey={keys['secondaryKey']}")
    server.cli_ok("hub", "device-identity", "delete", "-d", device_id)
    missing = server.cli("hub", "device-identity", "show", "-d", device_id)
    assert (missing.code, missing.out) == (1, "")
    assert missing.err == f"error: device '{device_id}' does not exist on localhost (HTTP 404, errorCode 404001)\n"


def test_module_identity_and_module_twin_commands(server: Server) -> None:
    device_id = unique("cli-host")
    server.cli_ok("hub", "device-identity", "create", "-d", device_id, "--ee")
    created = server.cli_ok("hub", "module-identity", "create", "-d", device_id, "-m", "filter").json()
    assert (created["moduleId"], bool(created["generationId"]), "symmetricKey" in created["authentication"]) == (
        "filter",
        True,
        False,
    )
    listed = server.cli_ok("hub", "module-identity", "list", "-d", device_id).out
    assert [line.split()[0] for line in listed.splitlines()[1:]] == ["$edgeAgent", "$edgeHub", "filter"]
    key = "ZmlsdGVyLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc="
    updated = server.cli_ok(
        "hub", "module-identity", "update", "-d", device_id, "-m", "filter", "--pk", key, "--show-keys"
    ).json()
    assert updated["authentication"]["symmetricKey"]["primaryKey"] == key
    shown = server.cli_ok("hub", "connection-string", "show", "-d", device_id, "-m", "filter").json()
    assert shown["connectionString"] == f"HostName=localhost;DeviceId={device_id};ModuleId=filter;SharedAccessKey={key}"

    twin = server.cli_ok(
        "hub", "module-twin", "update", "-d", device_id, "-m", "filter", "--desired", '{"rate": 1, "gone": 2}'
    ).json()
    assert twin["moduleId"] == "filter"
    merged = server.cli_ok(
        "hub", "module-twin", "update", "-d", device_id, "-m", "filter", "--desired", '{"gone": null}'
    ).json()
    assert {k: v for k, v in merged["properties"]["desired"].items() if not k.startswith("$")} == {"rate": 1}
    replaced = server.cli_ok(
        "hub", "module-twin", "replace", "-d", device_id, "-m", "filter", "--tags", '{"a": 1}'
    ).json()
    assert (replaced["tags"], "rate" in replaced["properties"]["desired"]) == ({"a": 1}, False)
    assert (
        server.cli_ok("hub", "module-twin", "show", "-d", device_id, "-m", "$edgeAgent").json()["moduleId"]
        == "$edgeAgent"
    )
    server.cli_ok("hub", "module-identity", "delete", "-d", device_id, "-m", "filter")
    assert server.cli("hub", "module-identity", "show", "-d", device_id, "-m", "filter").code == 1


def test_device_twin_commands_and_etags(server: Server) -> None:
    device_id = unique("cli-twin")
    server.cli_ok("hub", "device-identity", "create", "-d", device_id)
    twin = server.cli_ok(
        "hub", "device-twin", "update", "-d", device_id, "--tags", '{"env": "test"}', "--desired", '{"x": 1}'
    ).json()
    stale = server.cli(
        "hub", "device-twin", "update", "-d", device_id, "--tags", '{"env": "prod"}', "--etag", "AAAAAAAAAAA="
    )
    assert (stale.code, "has changed" in stale.err) == (1, True)
    replaced = server.cli_ok(
        "hub", "device-twin", "replace", "-d", device_id, "--desired", '{"y": 2}', "--etag", twin["etag"]
    ).json()
    assert replaced["tags"] == {}
    assert server.cli_ok("hub", "device-twin", "show", "-d", device_id).json()["properties"]["desired"]["y"] == 2
    bad = server.cli("hub", "device-twin", "update", "-d", device_id, "--tags", "{env: 1}")
    assert (bad.code, bad.err.startswith("error: --tags is not valid JSON")) == (1, True)


def test_query_follows_continuations(server: Server) -> None:
    fleet = unique("cli-fleet")
    ids = [f"{fleet}-{n}" for n in range(5)]
    for device_id in ids:
        server.cli_ok("hub", "device-identity", "create", "-d", device_id)
        server.cli_ok("hub", "device-twin", "update", "-d", device_id, "--tags", json.dumps({"fleet": fleet}))
    query = f"SELECT * FROM devices WHERE tags.fleet = '{fleet}'"
    found = server.cli_ok("hub", "query", "-q", query, "--page-size", "2", "-o", "json").json()
    assert [t["deviceId"] for t in found] == ids
    table = server.cli_ok("hub", "query", "-q", query, "--page-size", "2").out.splitlines()
    assert table[0].split()[:3] == ["DEVICE", "ID", "STATUS"]
    assert len(table) == 6
    projected = server.cli_ok(
        "hub",
        "query",
        "-q",
        f"SELECT deviceId FROM devices WHERE tags.fleet = '{fleet}'",
        "--top",
        "3",
        "--page-size",
        "2",
    )
    assert projected.out.split() == ["deviceId", *ids[:3]]
    wrong = server.cli("hub", "query", "-q", "SELECT * FROM devices WHERE tags.fleet == 'x'")
    assert wrong.code == 1
    assert wrong.err.startswith(
        "error: invalid query: expected a value, a property path or '(' but found '=' at position 41"
    )


def test_hub_connection_string(server: Server) -> None:
    shown = server.cli_ok("hub", "connection-string", "show").json()
    assert shown["connectionString"] == server.hub_connection_string()
    lonely = server.cli("hub", "connection-string", "show", "-m", "m")
    assert (lonely.code, lonely.err) == (1, "error: --module-id needs --device-id\n")


def test_configuration_commands(server: Server, tmp_path: Path) -> None:
    config_id = unique("cli-deploy")
    content = tmp_path / "deployment.json"
    manifest = {"$edgeAgent": {"properties.desired": {"schemaVersion": "1.1"}}}
    content.write_text(json.dumps({"content": {"modulesContent": manifest}}))
    metrics = json.dumps({"queries": {"all": "SELECT deviceId FROM devices"}})
    created = server.cli_ok(
        "hub", "configuration", "create", "--config-id", config_id, "--content", str(content),
        "--target-condition", "tags.env='test'", "--priority", "4", "--labels", '{"team": "a"}', "--metrics", metrics,
    ).json()  # fmt: skip
    assert (created["priority"], created["labels"], created["targetCondition"]) == (4, {"team": "a"}, "tags.env='test'")
    assert created["content"]["modulesContent"] == manifest
    assert created["metrics"]["queries"] == {"all": "SELECT deviceId FROM devices"}
    inline = server.cli_ok(
        "hub",
        "configuration",
        "create",
        "-c",
        config_id + "-2",
        "-k",
        json.dumps({"deviceContent": {"properties.desired.x": 1}}),
    )
    assert inline.json()["content"]["deviceContent"] == {"properties.desired.x": 1}
    table = server.cli_ok("hub", "configuration", "list").out
    assert table.splitlines()[0].split() == ["ID", "PRIORITY", "TARGET", "CONDITION", "TARGETED", "APPLIED", "CREATED"]
    assert config_id in table
    assert server.cli_ok("hub", "configuration", "show", "-c", config_id).json()["id"] == config_id
    server.cli_ok("hub", "configuration", "delete", "-c", config_id)
    server.cli_ok("hub", "configuration", "delete", "-c", config_id + "-2")
    assert server.cli("hub", "configuration", "show", "-c", config_id).code == 1

    no_file = server.cli("hub", "configuration", "create", "-c", "x", "--content", str(tmp_path / "missing.json"))
    assert (no_file.code, "is neither a JSON object nor a readable file" in no_file.err) == (1, True)
    bad_condition = server.cli("hub", "configuration", "create", "-c", "x", "-k", str(content), "--tc", "tags.env =")
    assert (bad_condition.code, bad_condition.err.startswith("error: targetCondition: invalid query")) == (1, True)
