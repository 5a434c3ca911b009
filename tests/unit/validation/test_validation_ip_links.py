"""bm.lifecycle.ip_links on real `ip -j link` / `ip -d -j link` / `ip -j addr` captures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bm.lifecycle.plugins.filter.ip_links import FilterModule
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import ip_links

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "validation"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def names(result: dict[str, Any]) -> list[str]:
    return [i["name"] for i in result["interfaces"]]


def reasons(result: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["reason"] for e in result["excluded"]}


@pytest.mark.parametrize("fixture", ["ip_link_details_qemu.json", "ip_addr_qemu.json"])
def test_qemu_guest_keeps_only_the_real_nics(fixture: str) -> None:
    result = ip_links(load(fixture))
    assert result["warnings"] == []
    assert {i["name"]: i["mac"] for i in result["interfaces"]} == {
        "eth0": "94:40:c9:5e:7a:b1",  # virtio-net
        "eth1": "94:40:c9:5e:7a:b0",  # e1000
    }
    assert set(reasons(result)) == {"lo", "dummy0", "usb0", "eth0.100", "br0", "tun0"}


def test_details_give_the_precise_reasons() -> None:
    why = reasons(ip_links(load("ip_link_details_qemu.json")))
    assert why["usb0"].startswith("USB NIC")
    assert why["eth0.100"] == "virtual interface (vlan)"
    assert why["br0"] == "virtual interface (bridge)"
    assert why["dummy0"] == "virtual interface (dummy)"
    assert why["tun0"] == "link type 'none', not Ethernet"
    assert why["lo"] == "link type 'loopback', not Ethernet"
    nic = ip_links(load("ip_link_details_qemu.json"))["interfaces"][1]
    assert nic == {
        "name": "eth1",
        "mac": "94:40:c9:5e:7a:b0",
        "current_mac": "94:40:c9:5e:7a:b0",
        "operstate": "UP",
        "carrier": True,
        "mtu": 1500,
        "parentbus": "pci",
        "parentdev": "0000:00:03.0",
        "addresses": [],
    }


def test_addresses_from_ip_addr() -> None:
    eth0 = ip_links(load("ip_addr_qemu.json"))["interfaces"][0]
    assert eth0["addresses"][0] == "10.0.2.15/24"


@pytest.mark.parametrize("fixture", ["ip_link_zoo.json", "ip_link_details_zoo.json", "ip_addr_zoo.json"])
def test_virtual_kinds_are_all_excluded(fixture: str) -> None:
    """veth (one in a bridge), bridge, macvlan, tun, loopback: none is physical, with or without -d."""
    result = ip_links(load(fixture))
    assert result["interfaces"] == []
    assert set(reasons(result)) == {"lo", "br0", "macvlan0", "tun0", "veth0", "eth1"}
    assert all(reason for reason in reasons(result).values())


@pytest.mark.parametrize("fixture", ["ip_link_host.json", "ip_link_details_host.json", "ip_addr_host.json"])
def test_this_machine(fixture: str) -> None:
    result = ip_links(load(fixture))
    assert names(result) == ["eth0"]
    assert set(reasons(result)) == {"lo", "ifb0", "ifb1"}


def test_exclude_macs_and_names() -> None:
    links = load("ip_link_details_qemu.json")
    assert names(ip_links(links, exclude_macs=["94-40-C9-5E-7A-B0"])) == ["eth0"]
    assert names(ip_links(links, exclude_names=[r"^eth0$"])) == ["eth1"]
    result = ip_links(links, exclude_names=["("], exclude_macs=["nope"])
    assert names(result) == ["eth0", "eth1"]
    assert len(result["warnings"]) == 2


def test_permanent_mac_wins_over_a_bond_members_current_one() -> None:
    link = dict(load("ip_link_details_qemu.json")[2], address="94:40:c9:5e:7a:b1", permaddr="94:40:C9:5E:7A:B0")
    (nic,) = ip_links([link])["interfaces"]
    assert (nic["mac"], nic["current_mac"]) == ("94:40:c9:5e:7a:b0", "94:40:c9:5e:7a:b1")


def test_duplicate_mac_is_a_warning() -> None:
    link = load("ip_link_details_qemu.json")[2]
    result = ip_links([link, dict(link, ifname="eth9")])
    assert names(result) == ["eth1", "eth9"]
    assert result["warnings"] == ["eth9: MAC 94:40:c9:5e:7a:b0 is also eth1's"]


@pytest.mark.parametrize(
    ("document", "warning"),
    [("[", "not JSON"), ({"a": 1}, "expected a list"), ([1, {"x": 2}], "entry #0 is not a link")],
)
def test_unusable_input(document: object, warning: str) -> None:
    result = ip_links(document)
    assert result["interfaces"] == []
    assert warning in result["warnings"][0]


def test_filter_plugin() -> None:
    flt = FilterModule().filters()["ip_links"]
    assert names(flt(load("ip_link_details_qemu.json"), exclude_macs=["94:40:c9:5e:7a:b1"])) == ["eth1"]
    with pytest.raises(AnsibleFilterError, match="expects the ip -j link list"):
        flt({"not": "a list"})
    with pytest.raises(AnsibleFilterError, match="exclude_macs must be a list"):
        flt([], exclude_macs="94:40:c9:5e:7a:b1")
