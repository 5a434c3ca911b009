"""bm.lifecycle.lldp_neighbors on real lldpctl captures of every shape (tests/fixtures/validation/lldpctl_*)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bm.lifecycle.plugins.filter.lldp_neighbors import FilterModule
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import NEIGHBOR_KEYS, lldp_neighbors

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "validation"
TOR_A = {
    "local_interface": "eno1",
    "chassis_name": "tor-a.lab.example",
    "chassis_id": "0c:a0:00:00:01:01",
    "chassis_id_type": "mac",
    "port_id": "swp1",
    "port_id_type": "ifname",
    "port_descr": "srv001 eno1",
    "mgmt_ips": ["192.0.2.11", "2001:db8:0:1::11"],
}
TOR_B = {
    "local_interface": "eno2",
    "chassis_name": "tor-b.lab.example",
    "chassis_id": "0c:b0:00:00:02:07",
    "chassis_id_type": "mac",
    "port_id": "0c:b0:00:00:02:07",
    "port_id_type": "mac",
    "port_descr": "Ethernet7",
    "mgmt_ips": ["2001:db8:0:1::12"],
}
TOR_C = {
    "local_interface": "eno3",
    "chassis_name": "tor-c",
    "chassis_id": "0c:c0:00:00:03:03",
    "chassis_id_type": "mac",
    "port_id": "Gi1/0/3",
    "port_id_type": "local",
    "port_descr": "srv001-eno3",
    "mgmt_ips": ["198.51.100.13"],
}
TOR_D = {
    "local_interface": "eno3",
    "chassis_name": "tor-d.lab.example",
    "chassis_id": "0c:d0:00:00:04:04",
    "chassis_id_type": "mac",
    "port_id": "17",
    "port_id_type": "local",
    "port_descr": "p4",
    "mgmt_ips": ["203.0.113.14", "2001:db8:0:4::14"],
}
EXPECTED = {
    "none": [],
    "one": [TOR_A],
    "two_interfaces": [TOR_A, TOR_B],
    "two_on_one": [TOR_C, TOR_D],
    "all": [TOR_A, TOR_B, TOR_C, TOR_D],
}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def by_port(neighbors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(neighbors, key=lambda n: (n["local_interface"], n["chassis_name"]))


@pytest.mark.parametrize("fmt", ["json", "json0.json"])
@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_every_shape(scenario: str, fmt: str) -> None:
    result = lldp_neighbors(load(f"lldpctl_{scenario}.{fmt}"))
    assert result["warnings"] == []
    assert by_port(result["neighbors"]) == EXPECTED[scenario]


def test_shapes_really_differ() -> None:
    """The fixtures hold the shapes the parser claims to handle (guards against a re-capture that loses one)."""
    assert load("lldpctl_none.json") == {"lldp": {}}
    assert isinstance(load("lldpctl_one.json")["lldp"]["interface"], dict)
    assert isinstance(load("lldpctl_two_interfaces.json")["lldp"]["interface"], list)
    names = [next(iter(entry)) for entry in load("lldpctl_two_on_one.json")["lldp"]["interface"]]
    assert names == ["eno3", "eno3"]
    chassis = load("lldpctl_two_interfaces.json")["lldp"]["interface"][1]["eno2"]["chassis"]["tor-b.lab.example"]
    assert isinstance(chassis["mgmt-ip"], str)


def test_text_input_is_parsed() -> None:
    text = (FIXTURES / "lldpctl_one.json").read_text()
    assert lldp_neighbors(text)["neighbors"] == [TOR_A]


def test_every_neighbor_has_every_key() -> None:
    for neighbor in lldp_neighbors(load("lldpctl_all.json"))["neighbors"]:
        assert tuple(neighbor) == NEIGHBOR_KEYS


def test_nameless_chassis_and_missing_parts_are_nulls() -> None:
    doc = load("lldpctl_one.json")
    body = doc["lldp"]["interface"]["eno1"]
    details = body["chassis"].pop("tor-a.lab.example")
    details.pop("mgmt-ip")
    body["chassis"] = details  # how lldpctl prints a chassis that sent no system name
    body["port"].pop("descr")
    result = lldp_neighbors(doc)
    assert result["warnings"] == []
    (neighbor,) = result["neighbors"]
    assert neighbor["chassis_name"] is None
    assert neighbor["chassis_id"] == "0c:a0:00:00:01:01"
    assert neighbor["port_descr"] is None
    assert neighbor["mgmt_ips"] == []


def test_bad_parts_become_warnings_not_exceptions() -> None:
    doc = load("lldpctl_all.json")
    entries = doc["lldp"]["interface"]
    entries[0]["eno1"]["chassis"]["tor-a.lab.example"]["mgmt-ip"] = ["192.0.2.11", "not-an-ip"]
    entries[1]["eno2"]["port"]["id"]["value"] = "zz:zz"
    entries.append({"eno9": "garbage"})
    entries.append(42)
    entries.append({"eno8": {"via": "LLDP"}})
    result = lldp_neighbors(doc)
    assert len(result["neighbors"]) == 4
    text = "\n".join(result["warnings"])
    assert "'not-an-ip' is not an IP address" in text
    assert "invalid MAC address 'zz:zz'" in text
    assert "eno9: neighbour is a str" in text
    assert "entry #5 is not a non-empty object" in text
    assert "eno8: no chassis" in text
    assert result["neighbors"][1]["port_id"] == "zz:zz"  # kept as reported


@pytest.mark.parametrize(
    ("document", "warning"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ([], "expected an object with an 'lldp' key"),
        ({"lldp": 3}, "expected an object or a list"),
        ({"nope": {}}, "expected an object with an 'lldp' key"),
    ],
)
def test_unusable_documents(document: object, warning: str) -> None:
    result = lldp_neighbors(document)
    assert result["neighbors"] == []
    assert warning in result["warnings"][0]


def test_filter_plugin() -> None:
    lldp = FilterModule().filters()["lldp_neighbors"]
    assert lldp(load("lldpctl_one.json"))["neighbors"] == [TOR_A]
    with pytest.raises(AnsibleFilterError, match="expects the lldpctl -f json document"):
        lldp(42)
