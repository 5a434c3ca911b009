# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers of what the validation image collects: ``lldpctl -f json``, ``dmidecode`` and ``ip -j link``.

Pure functions over real, messy tool output (see ``tests/fixtures/validation/``). None of them raises on bad input:
each returns its result together with a list of ``warnings`` (one plain sentence each) that say what was skipped
and why, so that one odd neighbour or interface never fails a whole report (netbox-agent crashed on a missing
``pvid``; these do not). Only the input's *type* is checked strictly by the filter plugins that wrap them.

- :func:`lldp_neighbors`: both ``lldpctl -f json`` (whose shape changes with the number of interfaces and
  neighbours) and ``-f json0`` (every value in a list) -> one flat record per neighbour.
- :func:`dmidecode`: ``dmidecode`` text -> system identity, BIOS, chassis, CPU and memory summary.
- :func:`ip_links`: ``ip [-d] -j link`` (or ``ip -j addr``) -> the physical Ethernet interfaces with canonical MACs;
  everything else (loopback, bridges, VLANs, veth, tun, bonds, the BMC's USB virtual NIC, ...) is listed as excluded
  with the reason.
Standard library only (plus ``_mac``), so modules, filters, the webhook and tests can all import it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._mac import MacError, normalize_mac

MAX_ITEMS = 4096  # interfaces, neighbours or links considered; the rest is dropped with a warning
MAX_TEXT = 4 * 1024 * 1024  # characters of dmidecode text considered
MAX_VALUE = 1024  # characters kept of any one string value

NEIGHBOR_KEYS = (
    "local_interface",
    "chassis_name",
    "chassis_id",
    "chassis_id_type",
    "port_id",
    "port_id_type",
    "port_descr",
    "mgmt_ips",
)


def _clip(value: object) -> str | None:
    """A non-empty string value, clipped to MAX_VALUE characters; anything else is None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    return text[:MAX_VALUE] if text else None


def _load(document: object, what: str, warnings: list[str]) -> object:
    """Accept the parsed document or its JSON text."""
    if isinstance(document, bytes | bytearray):
        document = bytes(document).decode("utf-8", "replace")
    if isinstance(document, str):
        try:
            return json.loads(document)
        except ValueError as exc:
            warnings.append(f"{what}: not JSON ({exc})")
            return None
    return document


# --- lldpctl ---------------------------------------------------------------------------------------------------


def _json0_value(node: object) -> object:
    """json0 wraps every value as ``[{"value": x}]``; unwrap one level (a list of several stays a list)."""
    if isinstance(node, list):
        values = [item.get("value") if isinstance(item, dict) and "value" in item else item for item in node]
        return values[0] if len(values) == 1 else values
    return node


def _json0_obj(node: object) -> dict[str, Any] | None:
    if isinstance(node, list) and node and isinstance(node[0], dict):
        return node[0]
    return node if isinstance(node, dict) else None


def _id_pair(node: object) -> tuple[str | None, str | None]:
    """(type, value) of an lldpd ``id`` node in either format."""
    node = _json0_obj(node)
    if not isinstance(node, dict):
        return None, None
    return _clip(node.get("type")), _clip(_json0_value(node.get("value")))


def _iter_json0(lldp: list[Any], warnings: list[str]) -> Iterator[tuple[str, object]]:
    """json0: ``[{"interface": [{"name": ..., ...}, ...]}]``, or ``[{}]`` without neighbours."""
    if not lldp:
        warnings.append("lldp: an empty list (json0 prints [{}] when there is no neighbour)")
    for block in lldp:
        if not isinstance(block, dict):
            warnings.append(f"lldp: ignored a {type(block).__name__} where an object was expected")
            continue
        unexpected = sorted(str(key)[:32] for key in block if key != "interface")
        if unexpected:
            warnings.append(f"lldp: unexpected keys {', '.join(unexpected[:8])}; ignored")
        interfaces = block.get("interface", [])
        for index, body in enumerate(interfaces if isinstance(interfaces, list) else [interfaces]):
            name = _clip(body.get("name")) if isinstance(body, dict) else None
            if name is None:
                warnings.append(f"lldp: interface #{index} has no name; skipped")
                continue
            yield name, body


def _iter_json(lldp: dict[str, Any], warnings: list[str]) -> Iterator[tuple[str, object]]:
    """json: one interface is ``{"eno1": {...}}``; several ``[{"eno1": {...}}, {"eno2": {...}}]``, the same name
    repeated once per neighbour when an interface has several; no neighbour at all is ``{}``."""
    unexpected = sorted(str(key)[:32] for key in lldp if key != "interface")
    if unexpected:
        warnings.append(f"lldp: unexpected keys {', '.join(unexpected[:8])}; ignored")
    if "interface" not in lldp:
        return
    interfaces = lldp["interface"]
    if not isinstance(interfaces, list | dict) or not interfaces:
        warnings.append(f"lldp: 'interface' is an empty or {type(interfaces).__name__} value; no neighbour read")
        return
    for index, entry in enumerate(interfaces if isinstance(interfaces, list) else [interfaces]):
        if not isinstance(entry, dict) or not entry:
            warnings.append(f"lldp: interface entry #{index} is not a non-empty object; skipped")
            continue
        for name, body in entry.items():
            bodies = body if isinstance(body, list) else [body]
            if not bodies:
                warnings.append(f"lldp: {str(name)[:64]}: an empty list where a neighbour was expected")
            for item in bodies:
                yield str(name)[:MAX_VALUE], item


def _iter_interfaces(lldp: object, warnings: list[str]) -> Iterator[tuple[str, object]]:
    """(local interface name, neighbour body) pairs from the ``lldp`` node, whatever its shape."""
    if isinstance(lldp, list):
        yield from _iter_json0(lldp, warnings)
    elif isinstance(lldp, dict):
        yield from _iter_json(lldp, warnings)
    else:
        warnings.append(f"lldp: expected an object or a list, got {type(lldp).__name__}")


def _chassis(node: object, where: str, warnings: list[str]) -> tuple[str | None, dict[str, Any]]:
    """(system name, chassis details) in either format; lldpd keys the chassis by its name when it has one."""
    if isinstance(node, list):  # json0
        obj = _json0_obj(node) or {}
        return _clip(_json0_value(obj.get("name"))), obj
    if not isinstance(node, dict) or not node:
        warnings.append(f"{where}: no chassis")
        return None, {}
    if isinstance(node.get("id"), dict):  # a chassis without a system name
        return None, node
    if len(node) > 1:
        warnings.append(f"{where}: chassis has {len(node)} names; used the first")
    name, details = next(iter(node.items()))
    if not isinstance(details, dict):
        warnings.append(f"{where}: chassis {name!r} has no details")
        details = {}
    return _clip(name), details


def _mgmt_ips(value: object, where: str, warnings: list[str]) -> list[str]:
    values = value if isinstance(value, list) else [value] if value is not None else []
    ips: list[str] = []
    for item in values[:64]:
        raw = _json0_value([item]) if isinstance(item, dict) else item
        text = _clip(raw)
        try:
            ip = str(ipaddress.ip_address(text or ""))
        except ValueError:
            warnings.append(f"{where}: management address {str(raw)[:64]!r} is not an IP address; skipped")
            continue
        if ip not in ips:
            ips.append(ip)
    return ips


def _canonical_if_mac(kind: str | None, value: str | None, where: str, warnings: list[str]) -> str | None:
    if kind != "mac" or value is None:
        return value
    try:
        return normalize_mac(value)
    except MacError as exc:
        warnings.append(f"{where}: {exc}; kept as reported")
        return value


def lldp_neighbors(document: object) -> dict[str, list[Any]]:
    """Flatten an ``lldpctl -f json`` (or ``-f json0``) document into one record per neighbour.

    ``document`` is the parsed JSON (a dict with an ``lldp`` key) or its text. Returns ``{"neighbors": [...],
    "warnings": [...]}``; each neighbour has exactly the keys of :data:`NEIGHBOR_KEYS`, ``None`` where lldpd reported
    nothing, and ``mgmt_ips`` a list (IPv4 and IPv6, canonical text). MAC-typed chassis and port ids are canonical
    (``_mac.normalize_mac``). Never raises: what it cannot use is skipped and said in ``warnings``.
    """
    warnings: list[str] = []
    neighbors: list[dict[str, Any]] = []
    doc = _load(document, "lldpctl output", warnings)
    if doc is None and not warnings:
        warnings.append("lldpctl output: empty")
    if doc is None:
        return {"neighbors": neighbors, "warnings": warnings}
    if not isinstance(doc, dict) or "lldp" not in doc:
        warnings.append(f"lldpctl output: expected an object with an 'lldp' key, got {type(doc).__name__}")
        return {"neighbors": neighbors, "warnings": warnings}
    for count, (local, body) in enumerate(_iter_interfaces(doc["lldp"], warnings)):
        if count >= MAX_ITEMS:
            warnings.append(f"lldp: more than {MAX_ITEMS} neighbours; the rest ignored")
            break
        where = f"lldp: {local}"
        if not isinstance(body, dict):
            warnings.append(f"{where}: neighbour is a {type(body).__name__}, not an object; skipped")
            continue
        name, chassis = _chassis(body.get("chassis"), where, warnings)
        chassis_id_type, chassis_id = _id_pair(chassis.get("id"))
        port = _json0_obj(body.get("port")) or {}
        port_id_type, port_id = _id_pair(port.get("id"))
        if chassis_id is None and port_id is None:
            warnings.append(f"{where}: neighbour has neither chassis id nor port id; skipped")
            continue
        if port_id is None:
            warnings.append(f"{where}: neighbour {name or chassis_id!r} reports no port id")
        neighbors.append(
            {
                "local_interface": local,
                "chassis_name": name,
                "chassis_id": _canonical_if_mac(chassis_id_type, chassis_id, where, warnings),
                "chassis_id_type": chassis_id_type,
                "port_id": _canonical_if_mac(port_id_type, port_id, where, warnings),
                "port_id_type": port_id_type,
                "port_descr": _clip(_json0_value(port.get("descr"))),
                "mgmt_ips": _mgmt_ips(chassis.get("mgmt-ip"), where, warnings),
            }
        )
    return {"neighbors": neighbors, "warnings": warnings}


# --- dmidecode -------------------------------------------------------------------------------------------------

_PLACEHOLDERS = {
    "",
    "not specified",
    "not provided",
    "not present",
    "not available",
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "system product name",
    "system manufacturer",
    "system serial number",
    "none",
    "unknown",
    "n/a",
    "na",
    "0",
    "0123456789",
    "123456789",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
}
_HANDLE = re.compile(r"^Handle (0x[0-9A-Fa-f]+), DMI type (\d+), (\d+) bytes")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(bytes|kB|KB|MB|GB|TB)$")
_SIZE_MB = {"bytes": 1 / (1024 * 1024), "kB": 1 / 1024, "KB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1024 * 1024}


def _value(text: str | None) -> str | None:
    """A dmidecode value, or None for its many spellings of "nothing"."""
    if text is None:
        return None
    text = text.strip()
    return None if text.lower() in _PLACEHOLDERS else text[:MAX_VALUE]


def _records(text: str) -> list[dict[str, Any]]:
    """dmidecode text -> [{"type": int, "title": str, "fields": {key: first value}}] in order."""
    records: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    expect_title = False
    for line in text.splitlines():
        match = _HANDLE.match(line)
        if match:
            current = {"handle": match.group(1), "type": int(match.group(2)), "title": None, "fields": {}}
            records.append(current)
            expect_title = True
            continue
        if current is None or not line.strip():
            continue
        if expect_title and not line.startswith("\t"):
            current["title"] = line.strip()
            expect_title = False
            continue
        expect_title = False
        if line.startswith("\t") and not line.startswith("\t\t") and ":" in line:
            key, _sep, value = line[1:].partition(":")
            current["fields"].setdefault(key.strip(), value.strip())
    return records


def _size_mb(text: str | None) -> int | None:
    match = _SIZE.match((text or "").strip())
    if not match:
        return None
    return round(float(match.group(1)) * _SIZE_MB[match.group(2)])


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def dmidecode(text: object) -> dict[str, Any]:
    """Summarise ``dmidecode`` text: identity, BIOS, chassis, CPU and memory.

    Returns ``{manufacturer, product_name, version, serial, uuid, sku, family, bios{vendor, version, release_date},
    chassis{manufacturer, type, serial, asset_tag}, cpu{sockets, populated, model, models, cores, threads},
    memory{slots, modules, total_mb, module_sizes_mb}, smbios_version, warnings}``. Placeholder values ("Not
    Specified", "To Be Filled By O.E.M.", "Default string", ...) become None. Never raises.
    """
    warnings: list[str] = []
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    if not isinstance(text, str):
        warnings.append(f"dmidecode: expected text, got {type(text).__name__}")
        text = ""
    if len(text) > MAX_TEXT:
        warnings.append(f"dmidecode: text longer than {MAX_TEXT} characters; the rest ignored")
        text = text[:MAX_TEXT]
    records = _records(text)
    if not records:
        reason = next((line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
        warnings.append("dmidecode: no SMBIOS records" + (f" ({reason[:200]})" if reason else ""))

    def first(dmi_type: int) -> dict[str, str]:
        return next((r["fields"] for r in records if r["type"] == dmi_type), {})

    system, bios, chassis = first(1), first(0), first(3)
    if records and not system:
        warnings.append("dmidecode: no System Information (type 1) record")
    smbios = re.search(r"^SMBIOS (\d+(?:\.\d+)+) present", text, re.MULTILINE)

    processors = [r["fields"] for r in records if r["type"] == 4]
    populated = [p for p in processors if "unpopulated" not in p.get("Status", "").lower()]
    models = [m for m in (_value(p.get("Version")) for p in populated) if m]
    cores = [c for c in (_int(p.get("Core Count")) for p in populated) if c is not None]
    threads = [t for t in (_int(p.get("Thread Count")) for p in populated) if t is not None]

    devices = [r["fields"] for r in records if r["type"] == 17]
    sizes = [s for s in (_size_mb(d.get("Size")) for d in devices) if s]
    return {
        "manufacturer": _value(system.get("Manufacturer")),
        "product_name": _value(system.get("Product Name")),
        "version": _value(system.get("Version")),
        "serial": _value(system.get("Serial Number")),
        "uuid": _value(system.get("UUID")),
        "sku": _value(system.get("SKU Number")),
        "family": _value(system.get("Family")),
        "bios": {
            "vendor": _value(bios.get("Vendor")),
            "version": _value(bios.get("Version")),
            "release_date": _value(bios.get("Release Date")),
        },
        "chassis": {
            "manufacturer": _value(chassis.get("Manufacturer")),
            "type": _value(chassis.get("Type")),
            "serial": _value(chassis.get("Serial Number")),
            "asset_tag": _value(chassis.get("Asset Tag")),
        },
        "cpu": {
            "sockets": len(processors),
            "populated": len(populated),
            "model": models[0] if models else None,
            "models": sorted(set(models)),
            "cores": sum(cores) if cores else None,
            "threads": sum(threads) if threads else None,
        },
        "memory": {
            "slots": len(devices),
            "modules": len(sizes),
            "total_mb": sum(sizes) if devices else None,
            "module_sizes_mb": sorted(sizes),
        },
        "smbios_version": smbios.group(1) if smbios else None,
        "warnings": warnings,
    }


# --- ip -j link ------------------------------------------------------------------------------------------------

DEFAULT_EXCLUDE_NAMES: tuple[str, ...] = (
    r"^lo$",
    r"^(br|virbr|docker|cni|flannel|cali|vxlan|veth|tun|tap|bond|team|dummy|ifb|macvlan|macvtap|vlan|wg|gre|ip6?tnl)",
    r"\.\d+$",  # VLAN sub-interfaces (eno1.100)
    r"^usb\d+$",  # the BMC's USB virtual NIC as RHEL and Debian name it
    r"^idrac$",
    r"^en[a-z0-9]*u\d+(?:u\d+)*(?:i\d+)?$",  # predictable names of USB NICs (enp0s20f0u1u6)
)


def _kind_reason(link: dict[str, Any], patterns: Sequence[re.Pattern[str]]) -> str | None:
    """Why this link is not a physical Ethernet NIC, or None if nothing says so."""
    linkinfo = link.get("linkinfo")
    kind = linkinfo.get("info_kind") if isinstance(linkinfo, dict) else None
    checks = (
        (link.get("link_type") != "ether", f"link type {link.get('link_type')!r}, not Ethernet"),
        (bool(kind), f"virtual interface ({kind})"),
        (link.get("parentbus") == "usb", "USB NIC (the BMC's virtual NIC; its fixed MAC repeats across servers)"),
    )
    reason = next((why for hit, why in checks if hit), None)
    if reason is None:
        stacked = next((key for key in ("link", "link_index", "link_netnsid") if key in link), None)
        if stacked:
            reason = f"stacked on or paired with another link ({stacked})"
    if reason is None:
        name = str(link.get("ifname"))
        pattern = next((p for p in patterns if p.search(name)), None)
        if pattern is not None:
            reason = f"name matches {pattern.pattern!r}"
    return reason


def _mac_of(link: dict[str, Any], excluded_macs: set[str]) -> tuple[str | None, str | None]:
    """(reason to exclude or None, canonical MAC or None): the permanent address when the link shows one."""
    try:
        mac = normalize_mac(link.get("permaddr") or link.get("address"))
    except MacError as exc:
        return str(exc), None
    if mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff") or int(mac[:2], 16) & 1:
        return f"MAC {mac} is not a unicast hardware address", None
    if mac in excluded_macs:
        return f"MAC {mac} is in exclude_macs", None
    return None, mac


def _options(
    exclude_names: Sequence[str] | None, exclude_macs: Sequence[str], warnings: list[str]
) -> tuple[list[re.Pattern[str]], set[str]]:
    patterns: list[re.Pattern[str]] = []
    for text in DEFAULT_EXCLUDE_NAMES if exclude_names is None else exclude_names:
        try:
            patterns.append(re.compile(str(text)))
        except re.error as exc:
            warnings.append(f"exclude_names: {str(text)[:64]!r} is not a regular expression ({exc}); ignored")
    macs: set[str] = set()
    for raw in exclude_macs:
        try:
            macs.add(normalize_mac(raw))
        except MacError as exc:
            warnings.append(f"exclude_macs: {exc}; ignored")
    return patterns, macs


def _addresses(link: dict[str, Any]) -> list[str]:
    infos = link.get("addr_info")
    return [
        f"{info['local']}/{info['prefixlen']}"
        for info in (infos if isinstance(infos, list) else [])
        if isinstance(info, dict) and info.get("local") and info.get("prefixlen") is not None
    ]


def ip_links(
    document: object,
    exclude_names: Sequence[str] | None = None,
    exclude_macs: Sequence[str] = (),
) -> dict[str, list[Any]]:
    """Pick the physical Ethernet interfaces out of ``ip [-d] -j link`` (or ``ip -j addr``) output.

    ``document`` is the parsed JSON list or its text. Prefer ``ip -d -j link``: its ``linkinfo.info_kind`` and
    ``parentbus`` identify bridges, VLANs, veth, tun, bonds and USB NICs for sure; without them the rules fall back
    to links that point at another link and to interface names (``exclude_names``, regular expressions; default
    :data:`DEFAULT_EXCLUDE_NAMES`). ``exclude_macs`` (any spelling) drops known fixed MACs, such as a vendor's BMC
    USB NIC.

    Returns ``{"interfaces": [...], "excluded": [{"name", "reason"}], "warnings": [...]}``; each interface is
    ``{name, mac, current_mac, operstate, carrier, mtu, parentbus, parentdev, addresses}`` with ``mac`` canonical
    (the permanent address when the current one differs, as on bond members) and ``addresses`` the ``ip -j addr``
    CIDRs (empty for ``ip -j link``). Never raises.
    """
    warnings: list[str] = []
    interfaces: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    result: dict[str, list[Any]] = {"interfaces": interfaces, "excluded": excluded, "warnings": warnings}
    links = _load(document, "ip link output", warnings)
    if not isinstance(links, list):
        if links is not None or not warnings:
            warnings.append(f"ip link output: expected a list, got {type(links).__name__}")
        return result
    patterns, excluded_macs = _options(exclude_names, exclude_macs, warnings)
    seen: dict[str, str] = {}
    for index, link in enumerate(links):
        if index >= MAX_ITEMS:
            warnings.append(f"ip link output: more than {MAX_ITEMS} links; the rest ignored")
            break
        if not isinstance(link, dict) or not _clip(link.get("ifname")):
            warnings.append(f"ip link output: entry #{index} is not a link with an ifname; skipped")
            continue
        name = str(link["ifname"])[:MAX_VALUE]
        reason = _kind_reason(link, patterns)
        mac = None
        if reason is None:
            reason, mac = _mac_of(link, excluded_macs)
        if reason is not None or mac is None:
            excluded.append({"name": name, "reason": reason or "no MAC"})
            continue
        if mac in seen:
            warnings.append(f"{name}: MAC {mac} is also {seen[mac]}'s")
        seen[mac] = name
        flags = link.get("flags")
        interfaces.append(
            {
                "name": name,
                "mac": mac,
                "current_mac": _current_mac(link.get("address")),
                "operstate": _clip(link.get("operstate")),
                "carrier": isinstance(flags, list) and "LOWER_UP" in flags,
                "mtu": link.get("mtu") if isinstance(link.get("mtu"), int) else None,
                "parentbus": _clip(link.get("parentbus")),
                "parentdev": _clip(link.get("parentdev")),
                "addresses": _addresses(link),
            }
        )
    return result


def _current_mac(value: object) -> str | None:
    try:
        return normalize_mac(value)
    except MacError:
        return None
