"""Property tests: the validation parsers never raise, and every rejection says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import (
    NEIGHBOR_KEYS,
    dmidecode,
    ip_links,
    lldp_neighbors,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "validation"
LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSONISH = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
LLDP_KEYS = st.sampled_from(["lldp", "interface", "chassis", "port", "id", "type", "value", "mgmt-ip", "descr", "eno1"])
LLDPISH = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(LLDP_KEYS, children, max_size=4),
    max_leaves=40,
)


def check_lldp(result: dict[str, list[Any]]) -> None:
    assert set(result) == {"neighbors", "warnings"}
    for neighbor in result["neighbors"]:
        assert tuple(neighbor) == NEIGHBOR_KEYS
        assert isinstance(neighbor["mgmt_ips"], list)
        assert neighbor["local_interface"]
    assert all(isinstance(w, str) and w for w in result["warnings"])


@settings(max_examples=300, deadline=None)
@given(JSONISH | LLDPISH | st.builds(lambda body: {"lldp": body}, LLDPISH))
def test_lldp_never_raises(document: object) -> None:
    check_lldp(lldp_neighbors(document))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_lldp_mutated_real_capture(data: st.DataObject) -> None:
    """Replace one node of a real capture by junk: still no exception, and anything dropped is explained."""
    doc = json.loads((FIXTURES / "lldpctl_all.json").read_text())
    node: Any = doc
    path = []
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append((node, key))
        node = node[key]
    if path:
        parent, key = path[-1]
        parent[key] = data.draw(JSONISH)
    result = lldp_neighbors(doc)
    check_lldp(result)
    if len(result["neighbors"]) < 4:  # something was dropped: it must say why, unless it now reads "no neighbour"
        lldp = doc.get("lldp")
        says_none = lldp == {} or (isinstance(lldp, list) and bool(lldp) and all(block == {} for block in lldp))
        assert result["warnings"] or says_none


@settings(max_examples=300, deadline=None)
@given(JSONISH, st.lists(st.text(max_size=6), max_size=3), st.lists(st.text(max_size=17), max_size=3))
def test_ip_links_never_raises(document: object, names: list[str], macs: list[str]) -> None:
    result = ip_links(document, exclude_names=names, exclude_macs=macs)
    assert set(result) == {"interfaces", "excluded", "warnings"}
    for excluded in result["excluded"]:
        assert excluded["name"] and excluded["reason"]
    for nic in result["interfaces"]:
        assert len(nic["mac"]) == 17
    assert all(isinstance(w, str) and w for w in result["warnings"])


LINK_KEYS = st.sampled_from(["ifname", "link_type", "address", "permaddr", "linkinfo", "parentbus", "link", "flags"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(LINK_KEYS, LEAVES | st.just("ether") | st.just("52:54:00:12:34:56"), max_size=6)))
def test_every_link_is_kept_excluded_or_explained(links: list[dict[str, Any]]) -> None:
    result = ip_links(links)
    accounted = len(result["interfaces"]) + len(result["excluded"]) + len(result["warnings"])
    assert accounted >= len(links)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400) | st.binary(max_size=200) | JSONISH)
def test_dmidecode_never_raises(text: object) -> None:
    result = dmidecode(text)
    assert isinstance(result["warnings"], list)
    if not isinstance(text, str | bytes):
        assert result["warnings"]


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_dmidecode_mangled_real_capture(data: st.DataObject) -> None:
    lines = (FIXTURES / "dmidecode_qemu_hpe.txt").read_text().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = data.draw(st.text(max_size=40))
    result = dmidecode("\n".join(lines))
    assert isinstance(result["cpu"]["sockets"], int)
