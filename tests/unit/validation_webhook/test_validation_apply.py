"""_validation_apply (the logic of bm.lifecycle.netbox_validation_apply) on a small in-memory NetBox: matching order,
check mode, idempotency, conflicts, refusals, and the batch: requests per batch, not per device, and a device NetBox
refuses failing alone. The real NetBox is exercised by tests/integration/validation."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._mac import normalize_mac
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import NetBoxError
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_apply import Applier, apply_reports
from helpers import FakeNetBoxClient, NetBoxCall

TENANT = {"id": 1, "name": "baremetal-staging", "slug": "baremetal-staging"}


class MemoryNetBox(FakeNetBoxClient):
    """The few NetBox endpoints the applier uses, in memory; records every write."""

    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(100)
        self.tables: dict[str, dict[int, dict[str, Any]]] = {
            k: {} for k in ("devices", "interfaces", "mac-addresses", "cables", "manufacturers", "device-types", "ips")
        }
        self.writes: list[tuple[str, str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.refused_names: set[str] = set()  # interfaces NetBox refuses to create (HTTP 400)
        self.timeouts: list[float | None] = []

    # --- setup helpers ---
    def add(self, table: str, **record: Any) -> dict[str, Any]:
        record.setdefault("id", next(self.ids))
        self.tables[table][record["id"]] = record
        return record

    def device(self, name: str, state: str = "validating", **more: Any) -> dict[str, Any]:
        cf = {"lifecycle_state": {"value": state, "label": state}}
        return self.add("devices", name=name, tenant=TENANT, custom_fields=cf, serial="", device_type=None, **more)

    def iface(self, dev: dict[str, Any], name: str, mac: str | None = None, **more: Any) -> dict[str, Any]:
        fields = {"mac_address": None, "mac_addresses": [], "cable": None, "link_peers": [], "mgmt_only": False,
                  "description": "", **more}  # fmt: skip
        rec = self.add("interfaces", device={"id": dev["id"], "name": dev["name"]}, name=name, **fields)
        if mac:
            self._set_mac(rec, mac)
        return rec

    def cable(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        rec = self.add("cables", ends=(a["id"], b["id"]))
        for one, other in ((a, b), (b, a)):
            one["cable"] = {"id": rec["id"]}
            one["link_peers"] = [{"id": other["id"], "name": other["name"], "device": other["device"]}]
        return rec

    def _set_mac(self, iface: dict[str, Any], mac: str) -> None:
        mac = normalize_mac(mac).upper()
        iface["mac_address"] = mac
        if all(m["mac_address"] != mac for m in iface["mac_addresses"]):
            m = self.add("mac-addresses", mac_address=mac, assigned_object_id=iface["id"],
                         assigned_object_type="dcim.interface",
                         assigned_object={"id": iface["id"], "device": iface["device"]})  # fmt: skip
            iface["mac_addresses"].append({"id": m["id"], "mac_address": mac})

    # --- the API ---
    def answer(self, call: NetBoxCall) -> Any:
        method, path, body = call.method, call.path, call.body
        self.calls.append((method, path))
        self.timeouts.append(call.timeout)
        params = dict(call.params or {})
        parts = path.strip("/").split("/")[2:]  # after api/<app>
        table = {"ip-addresses": "ips"}.get(parts[0], parts[0])
        if method != "GET":
            self.writes.append((method, path, copy.deepcopy(body)))
        if method == "GET" and len(parts) == 2:
            return copy.deepcopy(self.tables[table][int(parts[1])])
        if method == "GET":
            rows = [r for r in self.tables[table].values() if self._match(table, r, params)]
            offset = int(params.get("offset", 0))
            return {"count": len(rows), "next": None, "results": copy.deepcopy(rows[offset:])}
        if isinstance(body, list):  # a bulk write: all or nothing, as NetBox does
            if any(self._refuses(table, row) for row in body):
                raise NetBoxError(f"NetBox {method} {path}: HTTP 400: refused", 400)
            return [self._write(method, table, row["id"] if method == "PATCH" else None, row) for row in body]
        if self._refuses(table, body):
            raise NetBoxError(f"NetBox {method} {path}: HTTP 400: refused", 400)
        return self._write(method, table, int(parts[1]) if len(parts) == 2 else None, body)

    def _refuses(self, table: str, row: dict[str, Any]) -> bool:
        return table == "interfaces" and row.get("name") in self.refused_names

    def _write(self, method: str, table: str, record_id: int | None, body: dict[str, Any]) -> dict[str, Any]:
        if method == "POST":
            return self._post(table, body)
        if method == "PATCH" and record_id is not None:
            rec = self.tables[table][record_id]
            body = {k: v for k, v in body.items() if k != "id"}
            if "mac_address" in body:
                self._set_mac(rec, body.pop("mac_address"))
            if "device_type" in body:  # NetBox answers nested objects
                body["device_type"] = {"id": body["device_type"]}
            rec.update(body)
            return copy.deepcopy(rec)
        raise NetBoxError(f"unexpected {method} on {table}", 400)

    @staticmethod
    def _match(table: str, row: dict[str, Any], params: dict[str, Any]) -> bool:
        for key, want in params.items():
            if key in ("limit", "offset", "brief"):
                continue
            if key in ("device_id", "id"):  # a list: any of them (repeated in a URL)
                ids = {int(w) for w in (want if isinstance(want, list) else [want])}
                ok = (row["device"]["id"] if key == "device_id" else row["id"]) in ids
            elif key == "manufacturer_id":
                ok = row["manufacturer"] == int(want)
            elif key.endswith("__ie"):
                ok = str(row.get(key[:-4], "")).lower() == str(want).lower()
            elif key == "mac_address":
                wanted = want if isinstance(want, list) else [want]  # a list: any of them (id= repeated in a URL)
                ok = row["mac_address"] in {normalize_mac(w).upper() for w in wanted}
            else:
                ok = row.get(key) == want
            if not ok:
                return False
        return True

    def _post(self, table: str, body: dict[str, Any]) -> dict[str, Any]:
        if table == "interfaces":
            dev = self.tables["devices"][body["device"]]
            return copy.deepcopy(self.iface(dev, body["name"], body.get("mac_address"), type=body["type"]))
        if table == "cables":
            a = self.tables["interfaces"][body["a_terminations"][0]["object_id"]]
            b = self.tables["interfaces"][body["b_terminations"][0]["object_id"]]
            return copy.deepcopy(self.cable(a, b))
        return copy.deepcopy(self.add(table, **body))


def report(*neighbors: dict[str, Any]) -> dict[str, Any]:
    return {
        "hardware": {"manufacturer": "HPE", "model": "ProLiant DL360 Gen10", "serial": "CZJ1"},
        "interfaces": [
            {"name": "eth0", "mac": "94:40:c9:00:00:10", "carrier": True},
            {"name": "eth1", "mac": "94:40:c9:00:00:11", "carrier": True},
            {"name": "eth2", "mac": "94:40:c9:00:00:12", "carrier": False},
        ],
        "neighbors": list(neighbors),
        "warnings": [],
    }


def nb_(local: str, name: str | None, port: str, **more: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"local_interface": local, "chassis_name": name, "chassis_id": None, "chassis_id_type": None,
            "port_id": port, "port_id_type": "ifname", "port_descr": None, "mgmt_ips": []}  # fmt: skip
    return {**base, **more}


def apply_report(nb: MemoryNetBox, device_id: int, data: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A batch of one."""
    return apply_reports(nb, None, [(device_id, data)], **options)[0]


@pytest.fixture
def nb() -> MemoryNetBox:
    fake = MemoryNetBox()
    srv = fake.device("srv001", id=1)
    fake.iface(srv, "ilo", "94:40:c9:00:00:10", mgmt_only=True)  # same MAC as eth0: the BMC is never matched
    fake.iface(srv, "eno1", "94:40:c9:00:00:11")  # eth1's MAC: updated in place, not duplicated
    sw = fake.device("tor-a", state="staged", id=2)
    for port in ("Ethernet1", "Ethernet2", "Ethernet3"):
        fake.iface(sw, port)
    return fake


def test_check_mode_plans_everything_and_writes_nothing(nb: MemoryNetBox) -> None:
    result = apply_report(nb, 1, report(nb_("eth0", "tor-a", "Ethernet1")), check_mode=True)
    assert nb.writes == []
    assert result["changed"] is True
    assert "created manufacturer HPE" in result["changes"]
    assert [i["action"] for i in result["interfaces"]] == ["created", "unchanged", "created"]
    assert result["cables"][0]["action"] == "created"
    assert result["diff"]["after"]["device"]["serial"] == "CZJ1"


def test_apply_then_again_writes_nothing_the_second_time(nb: MemoryNetBox) -> None:
    data = report(nb_("eth0", "tor-a.lab.example", "Ethernet1"), nb_("eth1", "tor-a", "Ethernet2"))
    first = apply_report(nb, 1, data)
    assert first["changed"]
    names = sorted(i["name"] for i in nb.tables["interfaces"].values() if i["device"]["id"] == 1)
    assert names == ["eno1", "eth0", "eth2", "ilo"]  # eth1 is eno1 (same MAC); the BMC untouched
    assert [c["port"] for c in first["cables"]] == ["Ethernet1", "Ethernet2"]
    assert first["no_neighbor_links"] == []  # eth2 has no carrier
    device = nb.tables["devices"][1]
    assert device["serial"] == "CZJ1"
    assert nb.tables["device-types"][device["device_type"]["id"]]["model"] == "ProLiant DL360 Gen10"
    writes = len(nb.writes)
    second = apply_report(nb, 1, data)
    assert second["changed"] is False, second["changes"]
    assert len(nb.writes) == writes
    assert [c["action"] for c in second["cables"]] == ["exists", "exists"]


def second_server(nb: MemoryNetBox, device_id: int, port: str, mac: str = "94:40:c9:00:00:20") -> dict[str, Any]:
    """Another server in validating and its report: one NIC, LLDP saying tor-a ``port``."""
    nb.device(f"srv{device_id:03d}", id=device_id)
    data = report(nb_("eth0", "tor-a", port))
    data["interfaces"] = [{"name": "eth0", "mac": mac, "carrier": True}]
    return data


def test_one_batch_looks_manufacturer_type_and_switch_up_once(nb: MemoryNetBox) -> None:
    first, second = apply_reports(nb, None, [(1, report(nb_("eth0", "tor-a", "Ethernet1"))),
                                             (3, second_server(nb, 3, "Ethernet2"))])  # fmt: skip
    assert first["hardware"]["device_type_id"] == second["hardware"]["device_type_id"] is not None
    assert [c["switch"] for c in second["cables"]] == ["tor-a"]
    assert sum(1 for c in nb.calls if c[1].endswith("/manufacturers/") and c[0] == "GET") == 2  # name, slug: once
    assert sum(1 for c in nb.calls if c[1] == "/api/dcim/devices/" and c[0] == "GET") == 2  # the batch, tor-a


def test_a_batch_costs_the_same_requests_as_one_report(nb: MemoryNetBox) -> None:
    apply_reports(nb, None, [(1, report(nb_("eth0", "tor-a", "Ethernet1")))])
    alone = nb.requests
    fresh = MemoryNetBox()
    fresh.device("srv001", id=1)
    switch = fresh.device("tor-a", state="staged", id=2)
    batch = [(1, report(nb_("eth0", "tor-a", "Ethernet1")))]
    for n in range(3, 23):
        batch.append((n, second_server(fresh, n, f"Ethernet{n}", mac=f"94:40:c9:00:01:{n:02x}")))
    for n in (1, *range(3, 23)):
        fresh.iface(switch, f"Ethernet{n}")
    results = apply_reports(fresh, None, batch)
    assert all(len(r["cables"]) == 1 and r["cables"][0]["cable_id"] for r in results)
    assert fresh.requests == alone  # 21 reports: the same reads and one bulk write per kind
    cables = fresh.calls.index(("POST", "/api/dcim/cables/"))
    assert (fresh.timeouts[cables] or 0) >= fresh.timeout + 21  # a bulk write may take longer: its rows' time
    assert {path for method, path, _ in fresh.writes if method == "POST"} >= {"/api/dcim/cables/",
                                                                               "/api/dcim/interfaces/"}  # fmt: skip


def test_two_reports_on_one_switch_port_the_first_gets_the_cable(nb: MemoryNetBox) -> None:
    first, second = apply_reports(nb, None, [(1, report(nb_("eth0", "tor-a", "Ethernet1"))),
                                             (3, second_server(nb, 3, "Ethernet1"))])  # fmt: skip
    assert first["cables"][0]["action"] == "created"
    assert second["cables"] == []
    assert "srv001 eth0 (a cable this batch creates)" in second["conflicts"][0]["reason"]
    assert sum(len(body) for method, path, body in nb.writes if path == "/api/dcim/cables/") == 1


def test_a_device_netbox_refuses_fails_alone(nb: MemoryNetBox) -> None:
    nb.refused_names.add("eth9")
    refused = report(nb_("eth0", "tor-a", "Ethernet1"))
    refused["interfaces"].append({"name": "eth9", "mac": "94:40:c9:00:00:19", "carrier": False})
    first, second = apply_reports(nb, None, [(1, refused), (3, second_server(nb, 3, "Ethernet2"))])
    assert first["error"]["reason"] == "netbox_refused"
    assert first["cables"] == []  # dropped out before the cables step
    assert not any(i["device"]["id"] == 1 and i.get("cable") for i in nb.tables["interfaces"].values())
    assert second["error"] is None
    assert second["cables"][0]["cable_id"] is not None


def test_unknown_device_locked_device_and_a_later_report_of_the_same_device(nb: MemoryNetBox) -> None:
    class Busy:
        """Redis where another run holds device 3's lock."""

        def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
            return [None if c[0] == "SET" and c[1].endswith(":3") else "OK" for c in commands]

    data = second_server(nb, 3, "Ethernet2")
    batch = [(1, report()), (3, data), (999, report()), (1, report(nb_("eth0", "tor-a", "Ethernet1")))]
    earlier, locked, missing, later = apply_reports(nb, Busy(), batch, lock_wait=0)  # type: ignore[arg-type]
    assert (earlier["refused"], locked["refused"], missing["error"]["reason"]) == ("superseded", "locked",
                                                                                  "unknown_device")  # fmt: skip
    assert later["cables"][0]["action"] == "created"
    assert not any(i["device"]["id"] == 3 for i in nb.tables["interfaces"].values())


def test_conflicting_cables_are_reported_not_changed(nb: MemoryNetBox) -> None:
    other = nb.device("peer01", state="staged")
    peer = nb.iface(other, "Ethernet9")
    port3 = next(i for i in nb.tables["interfaces"].values() if i["name"] == "Ethernet3")
    nb.cable(port3, peer)
    eno1 = next(i for i in nb.tables["interfaces"].values() if i["name"] == "eno1")
    nb.cable(eno1, next(i for i in nb.tables["interfaces"].values() if i["name"] == "Ethernet1"))
    result = apply_report(nb, 1, report(nb_("eth0", "tor-a", "Ethernet3"), nb_("eth1", "tor-a", "Ethernet2")))
    reasons = {c["interface"]: c["reason"] for c in result["conflicts"]}
    assert "peer01 Ethernet9" in reasons["eth0"]
    assert "tor-a Ethernet1" in reasons["eno1"]
    assert not any(path.startswith("/api/dcim/cables/") for _, path, _ in nb.writes)
    assert "CABLE CONFLICTS" in result["summary"]


def test_unmatched_neighbours_and_links_without_neighbour(nb: MemoryNetBox) -> None:
    data = report(nb_("eth0", "ghost", "swp1"), nb_("eth1", "tor-a", "Ethernet99"), nb_("usb0", "tor-a", "Ethernet1"))
    result = apply_report(nb, 1, data)
    reasons = [u["reason"] for u in result["unmatched_neighbors"]]
    assert reasons[0].startswith("switch not found")
    assert reasons[1].startswith("switch found")
    assert reasons[2].startswith("the local interface")
    assert result["no_neighbor_links"] == []
    result = apply_report(nb, 1, report())
    assert result["no_neighbor_links"] == ["eth0", "eth1"]
    assert "eth0, eth1" in result["summary"]


def test_switch_by_chassis_mac_and_port_by_mac_or_description(nb: MemoryNetBox) -> None:
    sw = nb.tables["devices"][2]
    nb.iface(sw, "mgmt0", "0c:b0:00:00:02:00")
    nb.iface(sw, "Ethernet7", "0c:b0:00:00:02:07", description="uplink-7")
    by_mac = nb_("eth0", "unknown-name", "0c-b0-00-00-02-07", chassis_id="0c:b0:00:00:02:00",
                 chassis_id_type="mac", port_id_type="mac")  # fmt: skip
    applier = Applier(nb, nb.tables["devices"][1], {}, interfaces=[], write=False)
    switch, how = applier.find_switch(by_mac)
    assert (switch, how) == ({"id": 2}, "chassis MAC 0c:b0:00:00:02:00")
    ports = applier.switch_ports(2)
    port, _how = Applier.find_port(ports, by_mac)
    assert port is not None
    assert port["name"] == "Ethernet7"
    assert Applier.find_port(ports, nb_("x", None, "7", port_id_type="local", port_descr="uplink-7"))[1] == (
        "description uplink-7"
    )
    assert Applier.find_port(ports, nb_("x", None, "7", port_descr="Ethernet3"))[1] == "name Ethernet3"


@pytest.mark.parametrize(("state", "tenant", "refused"), [("staged", None, "state"), ("validating", "x", "tenant")])
def test_refused_changes_nothing(nb: MemoryNetBox, state: str, tenant: str | None, refused: str) -> None:
    nb.tables["devices"][1]["custom_fields"]["lifecycle_state"] = state
    if tenant:
        nb.tables["devices"][1]["tenant"] = {"id": 2, "name": tenant, "slug": tenant}
    result = apply_report(nb, 1, report(nb_("eth0", "tor-a", "Ethernet1")))
    assert result["refused"] == refused
    assert nb.writes == []
