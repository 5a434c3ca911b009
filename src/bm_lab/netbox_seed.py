"""Register a simulated fleet in NetBox: servers with their BMC and data NICs, and the switches they are cabled to.

Idempotent (get or create); runs after `bm.lifecycle.bootstrap_netbox`, which owns the lifecycle schema and tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pynetbox

SWITCHES = ("tor1", "tor2")
CHUNK = 100  # names or ids per filter, rows per bulk create


@dataclass(frozen=True)
class Registered:
    """NetBox ids of one registered server."""

    name: str
    device_id: int


def _get_or_create(endpoint: Any, lookup: dict[str, Any], **fields: Any) -> Any:
    found = endpoint.get(**lookup)
    return found if found is not None else endpoint.create(**lookup, **fields)


def switch_mac(switch_index: int) -> str:
    """The chassis MAC a simulated switch announces over LLDP."""
    return f"0c:a0:00:00:0{switch_index + 1}:00"


def switch_ip(switch_index: int) -> str:
    """The management IP a simulated switch announces over LLDP."""
    return f"192.0.2.{11 + switch_index}"


def _chunks(values: list[Any]) -> list[list[Any]]:
    """``values`` in slices of ``CHUNK``: a filter's URL stays under gunicorn's request-line limit (4 KiB)."""
    return [values[start : start + CHUNK] for start in range(0, len(values), CHUNK)]


def remove(api: pynetbox.api, names: list[str]) -> int:
    """Delete earlier runs' servers with their IPs and cables (interfaces and MACs go with the device)."""
    removed = 0
    for device in (d for part in _chunks(names) for d in api.dcim.devices.filter(name=part)):
        for ip in api.ipam.ip_addresses.filter(device_id=device.id):
            ip.delete()
        for cable in api.dcim.cables.filter(device_id=device.id):
            cable.delete()
        device.delete()
        removed += 1
    return removed


def seed(api: pynetbox.api, servers: list[tuple[str, str]], *, tenant: str = "baremetal-staging") -> list[Registered]:
    """Register `servers` ([(name, bmc_mac)]) and the switches; data NICs eno1/eno2 get no MAC (validation fills it)."""
    site = _get_or_create(api.dcim.sites, {"slug": "dc1"}, name="dc1", status="active")
    hpe = _get_or_create(api.dcim.manufacturers, {"slug": "hpe"}, name="HPE")
    generic = _get_or_create(api.dcim.manufacturers, {"slug": "generic"}, name="Generic")
    server_type = _get_or_create(
        api.dcim.device_types, {"slug": "proliant-dl360-gen10"}, manufacturer=hpe.id, model="ProLiant DL360 Gen10"
    )
    switch_type = _get_or_create(
        api.dcim.device_types, {"slug": "tor-48x25g"}, manufacturer=generic.id, model="ToR 48x25G"
    )
    server_role = _get_or_create(api.dcim.device_roles, {"slug": "server"}, name="Server", color="2196f3")
    switch_role = _get_or_create(api.dcim.device_roles, {"slug": "switch"}, name="Switch", color="4caf50")
    owner = api.tenancy.tenants.get(slug=tenant)
    if owner is None:
        raise RuntimeError(f"tenant {tenant} is missing: run ansible-playbook bm.lifecycle.bootstrap_netbox first")

    for switch in SWITCHES:
        device = _get_or_create(
            api.dcim.devices, {"name": switch}, device_type=switch_type.id, role=switch_role.id, site=site.id
        )
        existing = {i.name for i in api.dcim.interfaces.filter(device_id=device.id)}
        missing = [f"Ethernet{p}" for p in range(1, len(servers) + 1) if f"Ethernet{p}" not in existing]
        for part in _chunks(missing):
            api.dcim.interfaces.create([{"device": device.id, "name": n, "type": "25gbase-x-sfp28"} for n in part])

    names = [name for name, _mac in servers]
    ids = {d.name: d.id for part in _chunks(names) for d in api.dcim.devices.filter(name=part)}
    new = [
        {"name": name, "device_type": server_type.id, "role": server_role.id, "site": site.id, "tenant": owner.id,
         "status": "active", "custom_fields": {"lifecycle_state": "staged"}}
        for name in names
        if name not in ids
    ]  # fmt: skip
    for part in _chunks(new):
        ids.update((d.name, d.id) for d in api.dcim.devices.create(part))
    have = {
        (i.device.id, i.name)
        for part in _chunks([ids[n] for n in names])
        for i in api.dcim.interfaces.filter(device_id=part)
    }
    interfaces = []
    for name, bmc_mac in servers:
        if (ids[name], "ilo") not in have:
            interfaces.append({"device": ids[name], "name": "ilo", "type": "1000base-t", "mgmt_only": True,
                               "mac_address": bmc_mac})  # fmt: skip
        interfaces += [
            {"device": ids[name], "name": nic, "type": "25gbase-x-sfp28"}
            for nic in ("eno1", "eno2")
            if (ids[name], nic) not in have
        ]
    for part in _chunks(interfaces):
        api.dcim.interfaces.create(part)
    return [Registered(name=name, device_id=ids[name]) for name in names]
