# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a batch of validation reports (the ``data`` of ``validation_report`` events, see
``_validation_report.summarize``) to NetBox: device type and manufacturer, serial, interfaces with their MACs, cables
to the switch ports LLDP saw.

Small ordered steps in the manner of ironic's inspection hooks, each over the whole batch: every report is planned
against what one read per kind of object found (devices, their interfaces, the switches and their ports), then the
step's writes go out in one bulk request per kind (device PATCH, interface POST and PATCH, cable POST). A device
whose write NetBox refuses fails alone and drops out of the later steps; its batch-mates go on. A neighbour or
interface that cannot be used is reported (``unmatched_neighbors``, ``conflicts``, ``skipped``), never fatal. Nothing
another fact put there is deleted or overwritten: an existing cable that contradicts LLDP is reported as a conflict and
left alone, and so is a switch port an earlier report of the same batch just cabled. The same report twice writes
nothing the second time.

Matching rules (docs/ARCHITECTURE.md, "The validation report"; NetBox 4.7 facts from the project's reference notes):
- a reported NIC is the device's interface holding its MAC (any MAC of the 4.2+ MAC model), else the interface of
  that name, else a new interface; its MAC is set with the 4.7 interface ``mac_address`` shortcut (finds or creates
  the MACAddress object and makes it primary). Management-only interfaces (the BMC) are never matched.
- a neighbour's switch: device by name (then by its short name), then the device owning the chassis MAC, then the
  device owning one of its management IPs; its port: interface by name = port id, then name = port description,
  then NetBox description = port description, then by MAC when the port id is a MAC.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    STATE_FIELD,
    TRANSITIONS,
    custom_field,
    refusal,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._mac import MacError, normalize_mac
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    DEFAULT_TENANT,
    INTERFACE_OBJECT_TYPE,
    DeviceLocks,
    NetBoxClient,
    NetBoxError,
    bulk_write,
    device_ref,
    list_in,
    mac_rows,
    read_devices,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient

DEFAULT_INTERFACE_TYPE = "other"
UNKNOWN_MANUFACTURER = "Unknown"


def slugify(text: str, limit: int = 100) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")
    return (slug or "unnamed")[:limit].rstrip("-") or "unnamed"


def _mac(value: object) -> str | None:
    try:
        return normalize_mac(value)
    except MacError:
        return None


def _macs_of(iface: dict[str, Any]) -> set[str]:
    macs = {_mac(m.get("mac_address")) for m in iface.get("mac_addresses") or [] if isinstance(m, dict)}
    macs.add(_mac(iface.get("mac_address")))
    macs.discard(None)
    return {m for m in macs if m}


def _peer_text(iface: dict[str, Any]) -> str:
    peers = iface.get("link_peers") or []
    if not peers:
        return f"cable #{(iface.get('cable') or {}).get('id')}"
    peer = peers[0]
    cable = (iface.get("cable") or {}).get("id")
    how = "a cable this batch creates" if cable is None else f"cable #{cable}"
    return f"{(peer.get('device') or {}).get('name', '?')} {peer.get('name', '?')} ({how})"


@dataclass
class Lookups:
    """What the reports of one batch look up in NetBox again and again: manufacturers, device types, switches (by
    name, chassis MAC or management IP) and their ports, found once per batch. The ports are shared: a cable one
    report plans is seen by the next."""

    found: dict[tuple[str, tuple[tuple[str, Any], ...]], int] = field(default_factory=dict)
    switches: dict[tuple[Any, ...], tuple[dict[str, Any] | None, str]] = field(default_factory=dict)
    ports: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class Applier:
    """One report on one device, planned step by step: each step leaves its writes in ``device_patch``,
    ``interface_writes`` or ``cable_writes`` for the batch to send. ``write`` False (check mode): manufacturers and
    device types are not created either. ``interfaces``: the device's interfaces as NetBox lists them."""

    def __init__(
        self,
        client: NetBoxClient,
        device: dict[str, Any],
        data: dict[str, Any],
        *,
        interfaces: list[dict[str, Any]],
        write: bool,
        interface_type: str = DEFAULT_INTERFACE_TYPE,
        lookups: Lookups | None = None,
    ) -> None:
        self.client = client
        self.lookups = lookups or Lookups()
        self.device = device
        self.existing = interfaces
        self.data = data
        self.write = write
        self.interface_type = interface_type
        self.changes: list[str] = []
        self.before: dict[str, Any] = {"device": {}, "interfaces": {}, "cables": []}
        self.after: dict[str, Any] = {"device": {}, "interfaces": {}, "cables": []}
        self.interfaces: list[dict[str, Any]] = []
        self.cables: list[dict[str, Any]] = []
        self.conflicts: list[dict[str, Any]] = []
        self.unmatched: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.hardware: dict[str, Any] = {}
        self._by_report_name: dict[str, dict[str, Any]] = {}
        self.device_patch: dict[str, Any] = {}
        self.interface_writes: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (entry, POST body or PATCH row)
        self.cable_writes: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (the cable's result, POST body)

    # --- step 1: manufacturer, device type, serial ------------------------------------------------------------------

    def _find_or_create(self, path: str, lookups: list[dict[str, Any]], body: dict[str, Any], what: str) -> int | None:
        keys = [(path, tuple(sorted(params.items()))) for params in lookups]
        for key, params in zip(keys, lookups, strict=True):
            if key in self.lookups.found:
                return self.lookups.found[key]
            found = self.client.get(path, limit=2, brief=1, **params).get("results", [])
            if found:
                self.lookups.found[key] = int(found[0]["id"])
                return self.lookups.found[key]
        self.changes.append(f"created {what}")
        if not self.write:
            return None
        self.lookups.found[keys[0]] = int(self.client.post(path, body)["id"])
        return self.lookups.found[keys[0]]

    def hardware_step(self) -> None:
        hw = self.data.get("hardware") or {}
        model, serial = hw.get("model"), hw.get("serial")
        maker = hw.get("manufacturer") or UNKNOWN_MANUFACTURER
        patch: dict[str, Any] = {}
        type_id: int | None = None
        current_type = self.device.get("device_type") or {}
        if model:
            maker_id = self._find_or_create(
                "/api/dcim/manufacturers/",
                [{"name__ie": maker}, {"slug": slugify(maker)}],
                {"name": maker[:100], "slug": slugify(maker)},
                f"manufacturer {maker}",
            )
            if maker_id is None:
                self.changes.append(f"created device type {maker} {model}")
            else:
                type_id = self._find_or_create(
                    "/api/dcim/device-types/",
                    [
                        {"manufacturer_id": maker_id, "model__ie": model},
                        {"manufacturer_id": maker_id, "slug": slugify(model)},
                    ],
                    {"manufacturer": maker_id, "model": model[:100], "slug": slugify(model), "u_height": 1},
                    f"device type {maker} {model}",
                )
            if type_id is None or type_id != current_type.get("id"):
                patch["device_type"] = type_id
                self.before["device"]["device_type"] = current_type.get("display") or current_type.get("model")
                self.after["device"]["device_type"] = f"{maker} {model}"
        else:
            self.skipped.append({"what": "device type", "reason": "the report has no model (dmidecode Product Name)"})
        if serial and serial != (self.device.get("serial") or ""):
            patch["serial"] = serial[:50]
            self.before["device"]["serial"] = self.device.get("serial") or None
            self.after["device"]["serial"] = serial[:50]
        elif not serial:
            self.skipped.append({"what": "serial", "reason": "the report has no serial number"})
        self.hardware = {
            "manufacturer": maker if model else hw.get("manufacturer"),
            "model": model,
            "serial": serial,
            "device_type_id": type_id if model else current_type.get("id"),
        }
        if patch:
            self.changes.append("device " + ", ".join(f"{k} -> {self.after['device'][k]}" for k in patch))
            self.device_patch = {"id": self.device["id"], **patch}

    # --- step 2: interfaces and MACs --------------------------------------------------------------------------------

    def interfaces_step(self) -> None:
        candidates = [i for i in self.existing if not i.get("mgmt_only")]
        used_ids: set[int] = set()
        used_macs: set[str] = set()
        for reported in self.data.get("interfaces") or []:
            name, mac = str(reported.get("name")), _mac(reported.get("mac"))
            if mac is None:
                self.skipped.append({"what": f"interface {name}", "reason": "no valid MAC"})
                continue
            if mac in used_macs:
                self.skipped.append(
                    {"what": f"interface {name}", "reason": f"MAC {mac} already reported by another NIC"}
                )
                continue
            used_macs.add(mac)
            by_mac = [i for i in candidates if mac in _macs_of(i) and i["id"] not in used_ids]
            by_name = [i for i in candidates if i.get("name") == name and i["id"] not in used_ids]
            matches = by_mac or by_name
            target = matches[0] if matches else None
            entry: dict[str, Any] = {
                "name": name,
                "mac": mac,
                "carrier": bool(reported.get("carrier")),
                "record": target,
            }
            if target is None:
                self.changes.append(f"created interface {name} with MAC {mac}")
                self.before["interfaces"][name] = None
                self.after["interfaces"][name] = mac
                entry.update(action="created", netbox_name=name, interface_id=None)
                body = {"device": self.device["id"], "name": name[:64], "type": self.interface_type,
                        "mac_address": mac, "enabled": True}  # fmt: skip
                self.interface_writes.append((entry, body))
            else:
                used_ids.add(int(target["id"]))
                primary = _mac(target.get("mac_address"))
                entry.update(netbox_name=target["name"], interface_id=target["id"], action="unchanged")
                if primary != mac:
                    entry["action"] = "updated"
                    self.changes.append(f"interface {target['name']}: primary MAC {primary or 'none'} -> {mac}")
                    self.before["interfaces"][target["name"]] = primary
                    self.after["interfaces"][target["name"]] = mac
                    self.interface_writes.append((entry, {"id": target["id"], "mac_address": mac}))
            self._by_report_name[name] = entry

    def interfaces_written(self, records: dict[int, dict[str, Any]]) -> None:
        """The interfaces as NetBox answered the writes (by ``id(entry)``): their records and ids."""
        for entry, _body in self.interface_writes:
            record = records.get(id(entry))
            if record is not None:
                entry.update(record=record, interface_id=record.get("id"))
        for entry in self._by_report_name.values():
            self.interfaces.append({k: entry[k] for k in ("name", "netbox_name", "mac", "interface_id", "action")})

    # --- step 3: switches, ports, cables ----------------------------------------------------------------------------

    def _unique_device(self, device_ids: set[int]) -> dict[str, Any] | None:
        device_ids.discard(int(self.device["id"]))
        if len(device_ids) != 1:
            return None
        return {"id": device_ids.pop()}

    def find_switch(self, nb: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        key = (nb.get("chassis_name"), nb.get("chassis_id"), tuple(nb.get("mgmt_ips") or ()))
        if key in self.lookups.switches:
            return self.lookups.switches[key]
        found: tuple[dict[str, Any] | None, str] = (None, "")
        name = nb.get("chassis_name")
        for candidate in dict.fromkeys([name, name.split(".")[0] if name else None]):
            if not candidate:
                continue
            rows = self.client.get("/api/dcim/devices/", name=candidate, limit=2, brief=1).get("results", [])
            if len(rows) == 1 and rows[0]["id"] != self.device["id"]:
                found = (rows[0], f"name {candidate}")
                break
        if found[0] is None and nb.get("chassis_id_type") == "mac" and nb.get("chassis_id"):
            chassis = normalize_mac(nb["chassis_id"])
            owners = {int(m["device_id"]) for m in mac_rows(self.client, [chassis])[chassis] if m.get("device_id")}
            device = self._unique_device(owners)
            if device is not None:
                found = (device, f"chassis MAC {nb['chassis_id']}")
        if found[0] is None:
            for ip in nb.get("mgmt_ips") or []:
                rows = self.client.get("/api/ipam/ip-addresses/", address=ip, limit=10).get("results", [])
                owners = {int(((r.get("assigned_object") or {}).get("device") or {}).get("id") or 0) for r in rows}
                owners.discard(0)
                device = self._unique_device(owners)
                if device is not None:
                    found = (device, f"management IP {ip}")
                    break
        self.lookups.switches[key] = found
        return found

    def switch_ports(self, switch_id: int) -> list[dict[str, Any]]:
        if switch_id not in self.lookups.ports:
            self.lookups.ports[switch_id] = self.client.list("/api/dcim/interfaces/", device_id=switch_id)
        return self.lookups.ports[switch_id]

    @staticmethod
    def find_port(ports: list[dict[str, Any]], nb: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        port_id, descr = nb.get("port_id"), nb.get("port_descr")
        rules: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
            (f"name {port_id}", lambda p: bool(port_id) and p.get("name") == port_id),
            (f"name {descr}", lambda p: bool(descr) and p.get("name") == descr),
            (f"description {descr}", lambda p: bool(descr) and p.get("description") == descr),
        ]
        if nb.get("port_id_type") == "mac" and _mac(port_id):
            rules.append((f"MAC {port_id}", lambda p: _mac(port_id) in _macs_of(p)))
        for how, rule in rules:
            hits = [p for p in ports if rule(p)]
            if len(hits) == 1:
                return hits[0], how
        return None, ""

    def _unmatched(self, nb: dict[str, Any], reason: str) -> None:
        keys = ("local_interface", "chassis_name", "chassis_id", "port_id", "port_descr", "mgmt_ips")
        self.unmatched.append({**{k: nb.get(k) for k in keys}, "reason": reason})

    def cables_step(self) -> None:
        for nb in self.data.get("neighbors") or []:
            local = self._by_report_name.get(str(nb.get("local_interface")))
            if local is None:
                self._unmatched(nb, "the local interface is not one of the reported physical NICs")
                continue
            switch, how_switch = self.find_switch(nb)
            if switch is None:
                self._unmatched(nb, "switch not found in NetBox (by name, chassis MAC or management IP)")
                continue
            port, how_port = self.find_port(self.switch_ports(int(switch["id"])), nb)
            if port is None:
                self._unmatched(
                    nb,
                    f"switch found (device #{switch['id']}, by {how_switch}) but no port matches "
                    "(by name, description or MAC)",
                )
                continue
            sw_name = (port.get("device") or {}).get("name") or switch.get("name") or f"#{switch['id']}"
            what = {
                "interface": local["netbox_name"],
                "switch": sw_name,
                "port": port["name"],
                "matched_by": f"switch by {how_switch}, port by {how_port}",
            }
            record = local.get("record") or {}
            if record.get("cable"):
                peer_ids = {p.get("id") for p in record.get("link_peers") or []}
                if port["id"] in peer_ids:
                    self.cables.append({**what, "cable_id": record["cable"]["id"], "action": "exists"})
                else:
                    self.conflicts.append(
                        {
                            **what,
                            "reason": f"{local['netbox_name']} is already cabled to {_peer_text(record)}; not changed",
                        }
                    )
                continue
            if port.get("cable"):
                self.conflicts.append(
                    {
                        **what,
                        "reason": f"switch port {sw_name} {port['name']} is already cabled to "
                        f"{_peer_text(port)}; not changed",
                    }
                )
                continue
            self.changes.append(f"cable {local['netbox_name']} <-> {sw_name} {port['name']}")
            self.after["cables"].append(f"{local['netbox_name']} <-> {sw_name} {port['name']}")
            cable = {**what, "cable_id": None, "action": "created"}
            if local.get("interface_id"):  # None in check mode for an interface still to create
                body = {
                    "a_terminations": [{"object_type": INTERFACE_OBJECT_TYPE, "object_id": local["interface_id"]}],
                    "b_terminations": [{"object_type": INTERFACE_OBJECT_TYPE, "object_id": port["id"]}],
                    "status": "connected",
                }
                self.cable_writes.append((cable, body))
            # later neighbours, of this report and of the batch's next ones, see the new cable on both ends
            port["cable"] = {"id": None}
            port["link_peers"] = [
                {"id": local.get("interface_id"), "name": local["netbox_name"], "device": device_ref(self.device)}
            ]
            local["record"] = {**record, "cable": {"id": None}, "link_peers": [{"id": port["id"], **port}]}
            self.cables.append(cable)

    def no_neighbor_links(self) -> list[str]:
        seen = {str(nb.get("local_interface")) for nb in self.data.get("neighbors") or []}
        return [i["name"] for i in self._by_report_name.values() if i["carrier"] and i["name"] not in seen]


def summary_text(result: dict[str, Any]) -> str:
    """One human paragraph for the journal entry of the transition."""
    hw = result.get("hardware") or {}
    parts = [
        f"validation report applied: {hw.get('manufacturer') or '?'} {hw.get('model') or '?'}, "
        f"serial {hw.get('serial') or '?'}; {len(result['interfaces'])} NICs, "
        f"{sum(1 for c in result['cables'] if c['action'] == 'created')} cables created, "
        f"{sum(1 for c in result['cables'] if c['action'] == 'exists')} already there"
    ]
    if result["conflicts"]:
        parts.append(
            "CABLE CONFLICTS (not changed): "
            + "; ".join(f"{c['interface']} -> {c['switch']} {c['port']}: {c['reason']}" for c in result["conflicts"])
        )
    if result["unmatched_neighbors"]:
        parts.append(
            "unmatched LLDP neighbours: "
            + "; ".join(
                f"{u['local_interface']}: {u['chassis_name'] or u['chassis_id']} port {u['port_id']} ({u['reason']})"
                for u in result["unmatched_neighbors"]
            )
        )
    if result["no_neighbor_links"]:
        parts.append(
            "NICs with link but no LLDP neighbour (cabling or switch LLDP?): " + ", ".join(result["no_neighbor_links"])
        )
    return "\n\n".join(parts)


def apply_reports(
    client: NetBoxClient,
    redis: RedisClient | None,
    reports: Sequence[tuple[int, dict[str, Any]]],
    *,
    tenant: str = DEFAULT_TENANT,
    interface_type: str = DEFAULT_INTERFACE_TYPE,
    check_mode: bool = False,
    lock_ttl: float = 120.0,
    lock_wait: float = 10.0,
) -> list[dict[str, Any]]:
    """Apply each ``(device id, report data)`` to its device if it may take ``complete_validation``; one result per
    report, in order (see the module docs).

    Under the devices' Redis locks (when ``redis`` is given and not ``check_mode``). Each result is ``{changed,
    refused, error, msg, device, state, hardware, interfaces, cables, conflicts, unmatched_neighbors,
    no_neighbor_links, skipped, warnings, changes, summary, diff}``; ``refused`` names why a device was left alone
    (``state``, ``tenant``, ``hardened``, ``locked``: another run holds it, ``superseded``: a later report of the
    same batch is applied instead), ``error`` is ``{reason, msg}`` when NetBox has no such device
    (``unknown_device``) or refused one of its writes (``netbox_refused``).
    """
    ids = [int(device_id) for device_id, _data in reports]
    held = (
        DeviceLocks(redis, ids, ttl=lock_ttl, wait=lock_wait)
        if redis is not None and not check_mode
        else contextlib.nullcontext()
    )
    with held as locks:
        batch = _Batch(client, write=not check_mode)
        batch.admit(reports, set(locks.busy) if locks else set(), tenant=tenant, interface_type=interface_type)
        return batch.run()


def _result(device: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "changed": False, "refused": None, "error": None, "msg": "", "device": device_ref(device),
        "state": custom_field(device, STATE_FIELD) if device.get("custom_fields") else None, "hardware": {},
        "interfaces": [], "cables": [], "conflicts": [], "unmatched_neighbors": [], "no_neighbor_links": [],
        "skipped": [], "warnings": list(data.get("warnings") or []), "changes": [], "summary": "",
        "diff": {"before": {}, "after": {}},
    }  # fmt: skip


class _Batch:
    """The reports of one batch: their results, and an applier for each report that may be applied."""

    def __init__(self, client: NetBoxClient, *, write: bool) -> None:
        self.client = client
        self.write = write
        self.results: list[dict[str, Any]] = []
        self.appliers: dict[int, Applier] = {}  # by result index
        self.lookups = Lookups()

    def admit(
        self, reports: Sequence[tuple[int, dict[str, Any]]], busy: set[int], *, tenant: str, interface_type: str
    ) -> None:
        """Read the devices (one list GET) and their interfaces (one per 100 devices); refuse what may not go on."""
        records = read_devices(self.client, [int(d) for d, _data in reports if int(d) not in busy])
        last = {int(device_id): index for index, (device_id, _data) in enumerate(reports)}
        admitted: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for index, (device_id, data) in enumerate(reports):
            record = records.get(int(device_id))
            result = _result(record or {"id": int(device_id), "name": None}, data)
            self.results.append(result)
            if int(device_id) in busy:
                result.update(refused="locked", msg=f"device #{device_id}: another stage holds its lock; nothing "
                              "changed (the report is delivered again)")  # fmt: skip
            elif record is None:
                msg = f"device #{device_id} does not exist in NetBox"
                result.update(error={"reason": "unknown_device", "msg": msg}, msg=msg)
            elif last[int(device_id)] != index:
                result.update(refused="superseded", msg=f"device {record.get('name')}: a later report of the same "
                              "batch is applied instead")  # fmt: skip
            elif (why := refusal(record, TRANSITIONS["complete_validation"], tenant)) is not None:
                result.update(refused=why[0], msg=why[1])
            else:
                admitted.append((index, record, data))
        device_ids = [int(record["id"]) for _index, record, _data in admitted]
        owned: dict[int, list[dict[str, Any]]] = {}
        for interface in list_in(self.client, "/api/dcim/interfaces/", "device_id", device_ids):
            owned.setdefault(int((interface.get("device") or {}).get("id") or 0), []).append(interface)
        for index, record, data in admitted:
            interfaces = owned.get(int(record["id"]), [])
            self.appliers[index] = Applier(self.client, record, data, interfaces=interfaces, write=self.write,
                                           interface_type=interface_type, lookups=self.lookups)  # fmt: skip

    def run(self) -> list[dict[str, Any]]:
        """Hardware, then interfaces, then cables: each planned for every report, then written in bulk."""
        for applier in self.appliers.values():
            applier.hardware_step()
        devices = [(i, None, a.device_patch) for i, a in self.appliers.items() if a.device_patch]
        self.send("PATCH", "/api/dcim/devices/", devices)
        for applier in self.appliers.values():
            applier.interfaces_step()
        rows = [(i, entry, body) for i, a in self.appliers.items() for entry, body in a.interface_writes]
        written = self.send("POST", "/api/dcim/interfaces/", [row for row in rows if "id" not in row[2]])
        written |= self.send("PATCH", "/api/dcim/interfaces/", [row for row in rows if "id" in row[2]])
        for applier in self.appliers.values():
            applier.interfaces_written(written)
            applier.cables_step()
        planned = [(i, cable, body) for i, a in self.appliers.items() for cable, body in a.cable_writes]
        cables = self.send("POST", "/api/dcim/cables/", planned)
        for index, applier in self.appliers.items():
            for cable, _body in applier.cable_writes:
                cable["cable_id"] = (cables.get(id(cable)) or {}).get("id")
            _finish(self.results[index], applier)
        return self.results

    def send(self, method: str, path: str, rows: list[tuple[int, Any, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
        """One step's writes of ``(result index, what, body)`` in bulk; the records by ``id(what)``. A device whose
        row NetBox refuses fails (``netbox_refused``) and leaves the batch: its later rows are not sent."""
        rows = [row for row in rows if row[0] in self.appliers]
        if not self.write or not rows:
            return {}
        records: dict[int, dict[str, Any]] = {}
        answers = bulk_write(self.client, method, path, [body for _i, _what, body in rows])
        for (index, what, _body), answer in zip(rows, answers, strict=True):
            if isinstance(answer, NetBoxError):
                if index in self.appliers:
                    name = self.appliers.pop(index).device.get("name")
                    msg = f"device {name}: NetBox refused a write, the report is not fully recorded: {answer}"
                    self.results[index].update(error={"reason": "netbox_refused", "msg": msg}, msg=msg)
            elif what is not None:
                records[id(what)] = answer
        return records


def _finish(result: dict[str, Any], applier: Applier) -> None:
    """An applied report's result."""
    result.update(
        changed=bool(applier.changes),
        hardware=applier.hardware,
        interfaces=applier.interfaces,
        cables=applier.cables,
        conflicts=applier.conflicts,
        unmatched_neighbors=applier.unmatched,
        no_neighbor_links=applier.no_neighbor_links(),
        skipped=applier.skipped,
        changes=applier.changes,
        diff={"before": applier.before, "after": applier.after},
    )
    result["summary"] = summary_text(result)
    result["msg"] = f"device {applier.device.get('name')}: " + (
        "; ".join(applier.changes) if applier.changes else "NetBox already matches the report"
    )
