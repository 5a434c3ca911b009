# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation report (``iso/README.md``, schema_version 1): its JSON Schema, its caps, and what of it goes on the
bus.

The webhook (``bm.lifecycle.validation_webhook``) checks a posted report against :data:`REPORT_SCHEMA` (also served in
its OpenAPI document), then :func:`summarize` turns it into the ``data`` of the ``validation_report`` envelope: the
parsed hardware identity, the physical Ethernet interfaces with canonical MACs and the flat LLDP neighbours, with
what was skipped and why. The raw tool output is not carried (an envelope is at most 64 KiB; dmidecode alone can be
100 KiB); the stage (``bm.lifecycle.netbox_validation_apply``) works from the summary only.
Standard library only.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import (
    dmidecode,
    ip_links,
    lldp_neighbors,
)

MAX_BODY_BYTES = 1024 * 1024
MAX_INTERFACES = 256
MAX_NEIGHBORS = 256
MAX_RAW_LINKS = 1024
MAX_DMIDECODE_CHARS = 512 * 1024
MAX_WARNINGS = 40
MAX_WARNING_CHARS = 300
MAX_JSON_DEPTH = 64

_STR = {"type": ["string", "null"], "maxLength": 256}
_SHORT = {"type": ["string", "null"], "maxLength": 128}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "bm-lifecycle validation report, schema_version 1",
    "type": "object",
    "additionalProperties": False,
    "required": ["schema_version", "device_id", "hardware", "lldp", "interfaces"],
    "properties": {
        "schema_version": {"type": "integer", "const": 1},
        "device_id": {
            "type": "string",
            "pattern": "^[1-9][0-9]{0,9}$",
            "description": "NetBox id of the device (bm.device_id on the kernel command line).",
        },
        "timestamp": {"type": ["string", "null"], "maxLength": 64},
        "hardware": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "manufacturer": _STR,
                "model": _STR,
                "serial": _STR,
                "uuid": _STR,
                "sku": _STR,
                "family": _STR,
                "bios_version": _STR,
                "chassis_serial": _STR,
                "cpu_count": {"type": ["integer", "null"], "minimum": 0, "maximum": 4096},
                "memory_total_kib": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**53},
            },
        },
        "lldp": {
            "type": "object",
            "additionalProperties": False,
            "required": ["lldp"],
            "properties": {"lldp": {"type": ["object", "array"], "maxProperties": 1024, "maxItems": 1024}},
            "description": "lldpctl -f json verbatim.",
        },
        "interfaces": {
            "type": "array",
            "maxItems": MAX_INTERFACES,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "mac"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 64},
                    "mac": {"type": ["string", "null"], "maxLength": 64},
                    "permanent_mac": {"type": ["string", "null"], "maxLength": 64},
                    "operstate": {"type": ["string", "null"], "maxLength": 32},
                    "carrier": {"type": ["boolean", "null"]},
                    "kind": {"type": ["string", "null"], "maxLength": 64},
                    "parentbus": _SHORT,
                    "parentdev": _SHORT,
                },
            },
        },
        "raw": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dmidecode": {"type": ["string", "null"], "maxLength": MAX_DMIDECODE_CHARS},
                "ip_link": {"type": ["array", "null"], "maxItems": MAX_RAW_LINKS},
                "ip_addr": {"type": ["array", "null"], "maxItems": MAX_RAW_LINKS},
            },
        },
        "agent": {"type": "object", "maxProperties": 32},
    },
}

_PLACEHOLDER = re.compile(
    r"^(|not specified|not provided|not present|not available|to be filled by o\.?e\.?m\.?|default string|"
    r"system (product name|manufacturer|serial number)|none|unknown|n/?a|0+|0123456789|123456789)$",
    re.IGNORECASE,
)


def json_depth(value: object, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), counting no further than ``limit + 1``."""
    depth = 0
    level: list[object] = [value]
    while depth <= limit:
        children: list[object] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
            else:
                continue
        if not any(isinstance(i, (dict, list)) for i in level):
            return depth
        depth += 1
        level = children
    return depth


def clean(value: object, limit: int = 256) -> str | None:
    """A dmidecode-ish string, or None for the usual placeholders."""
    if value is None:
        return None
    text = str(value).strip()[:limit]
    return None if _PLACEHOLDER.match(text) else text


def _as_link(item: dict[str, Any]) -> dict[str, Any]:
    """A report interface as the ``ip -d -j link`` record :func:`ip_links` understands."""
    link: dict[str, Any] = {
        "ifname": item.get("name"),
        "link_type": "ether",
        "address": item.get("mac"),
        "operstate": item.get("operstate"),
        "flags": ["UP", "LOWER_UP"] if item.get("carrier") else ["UP"],
    }
    if item.get("permanent_mac"):
        link["permaddr"] = item["permanent_mac"]
    if item.get("kind"):
        link["linkinfo"] = {"info_kind": item["kind"]}
    for key in ("parentbus", "parentdev"):
        if item.get(key):
            link[key] = item[key]
    return link


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` of the ``validation_report`` event built from a schema-valid report. Never raises on content.

    ``{report: {schema_version, timestamp, agent_version, kernel, errors}, hardware: {manufacturer, model, serial,
    uuid, sku, family, bios_version, cpu_count, memory_total_kib}, interfaces: [{name, mac, carrier, operstate,
    parentbus}], excluded_interfaces: [{name, reason}], neighbors: [lldp_neighbors records], warnings: [...]}``.
    Hardware identity comes from ``raw.dmidecode`` when present (placeholders dropped), else from ``hardware``.
    """
    warnings: list[str] = []
    hw_in = report.get("hardware") or {}
    raw = report.get("raw") or {}
    dmi: dict[str, Any] = {}
    if isinstance(raw.get("dmidecode"), str) and raw["dmidecode"].strip():
        dmi = dmidecode(raw["dmidecode"])
        warnings += [f"dmidecode: {w}" if not w.startswith("dmidecode") else w for w in dmi.get("warnings", [])]
    hardware = {
        "manufacturer": clean(dmi.get("manufacturer")) or clean(hw_in.get("manufacturer")),
        "model": clean(dmi.get("product_name")) or clean(hw_in.get("model")),
        "serial": clean(dmi.get("serial")) or clean(hw_in.get("serial")),
        "uuid": clean(dmi.get("uuid")) or clean(hw_in.get("uuid")),
        "sku": clean(dmi.get("sku")) or clean(hw_in.get("sku")),
        "family": clean(dmi.get("family")) or clean(hw_in.get("family")),
        "bios_version": clean((dmi.get("bios") or {}).get("version")) or clean(hw_in.get("bios_version")),
        "cpu_count": hw_in.get("cpu_count"),
        "memory_total_kib": hw_in.get("memory_total_kib"),
    }
    links = ip_links([_as_link(i) for i in report.get("interfaces") or []])
    warnings += links["warnings"]
    interfaces = [
        {k: i.get(k) for k in ("name", "mac", "carrier", "operstate", "parentbus")} for i in links["interfaces"]
    ]
    lldp = lldp_neighbors(report.get("lldp") or {})
    warnings += lldp["warnings"]
    agent = report.get("agent") or {}
    errors: list[Any] = agent["errors"] if isinstance(agent.get("errors"), list) else []
    return {
        "report": {
            "schema_version": report.get("schema_version"),
            "timestamp": report.get("timestamp"),
            "agent_version": agent.get("version") if isinstance(agent.get("version"), (int, str)) else None,
            "kernel": clean(agent.get("kernel"), 128),
            "errors": [str(e)[:MAX_WARNING_CHARS] for e in errors[:10]],
        },
        "hardware": hardware,
        "interfaces": interfaces,
        "excluded_interfaces": links["excluded"],
        "neighbors": lldp["neighbors"],
        "warnings": [w[:MAX_WARNING_CHARS] for w in warnings[:MAX_WARNINGS]],
    }
