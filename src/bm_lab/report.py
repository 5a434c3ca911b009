"""The validation report a simulated server posts, shaped like `iso/validate_server.sh` builds it on real hardware.

The LLDP part follows `lldpctl -f json` (a list of interfaces once there are two), dmidecode is its text format and
`ip -d -j link` its JSON: the webhook and the stage parse the same shapes as from the lab image.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cable:
    """One data NIC of a server wired to a switch port."""

    nic: str
    mac: str
    switch: str
    switch_mac: str
    switch_ip: str
    port: str


@dataclass(frozen=True)
class Server:
    """What the validation image would find on a server."""

    device_id: int
    serial: str
    uuid: str
    cables: tuple[Cable, ...]
    model: str = "ProLiant DL360 Gen10"
    manufacturer: str = "HPE"


def lldpctl_json(server: Server) -> dict[str, Any]:
    """`lldpctl -f json` as lldpd 1.0.16 prints it for one neighbour per interface."""
    interfaces = [
        {
            cable.nic: {
                "via": "LLDP",
                "rid": str(n + 1),
                "age": "0 day, 00:00:03",
                "chassis": {
                    cable.switch: {
                        "id": {"type": "mac", "value": cable.switch_mac},
                        "descr": "bm-lifecycle simulated top-of-rack switch",
                        "mgmt-ip": cable.switch_ip,
                        "mgmt-iface": "1",
                        "capability": [{"type": "Bridge", "enabled": True}, {"type": "Router", "enabled": False}],
                    }
                },
                "port": {"id": {"type": "ifname", "value": cable.port}, "descr": f"to {cable.nic}", "ttl": "120"},
            }
        }
        for n, cable in enumerate(server.cables)
    ]
    if not interfaces:
        return {"lldp": {}}
    return {"lldp": {"interface": interfaces[0] if len(interfaces) == 1 else interfaces}}


def dmidecode_text(server: Server) -> str:
    """dmidecode 3.4 text for the system, its two sockets and one DIMM."""
    blocks = [
        "# dmidecode 3.4\nGetting SMBIOS data from sysfs.\nSMBIOS 3.0.0 present.\n",
        (
            "Handle 0x0100, DMI type 1, 27 bytes\nSystem Information\n"
            f"\tManufacturer: {server.manufacturer}\n\tProduct Name: {server.model}\n\tVersion: Not Specified\n"
            f"\tSerial Number: {server.serial}\n\tUUID: {server.uuid.lower()}\n\tWake-up Type: Power Switch\n"
            "\tSKU Number: 867959-B21\n\tFamily: ProLiant\n"
        ),
    ]
    for socket in range(2):
        blocks.append(
            f"Handle 0x04{socket:02X}, DMI type 4, 48 bytes\nProcessor Information\n"
            f"\tSocket Designation: Proc {socket + 1}\n"
            "\tType: Central Processor\n\tManufacturer: Intel(R) Corporation\n"
            "\tVersion: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n\tStatus: Populated, Enabled\n"
            "\tCore Count: 20\n\tThread Count: 40\n"
        )
    blocks.append(
        "Handle 0x1100, DMI type 17, 84 bytes\nMemory Device\n\tSize: 32 GB\n\tForm Factor: DIMM\n"
        "\tLocator: PROC 1 DIMM 1\n\tType: DDR4\n\tSpeed: 2933 MT/s\n"
    )
    return "\n".join(blocks)


def ip_link_json(server: Server) -> list[dict[str, Any]]:
    """`ip -d -j link`: loopback, the data NICs, and the BMC's USB virtual NIC (which must be ignored)."""
    links: list[dict[str, Any]] = [
        {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "mtu": 65536, "operstate": "UNKNOWN",
         "link_type": "loopback", "address": "00:00:00:00:00:00"},
    ]  # fmt: skip
    for n, cable in enumerate(server.cables):
        links.append(
            {"ifindex": n + 2, "ifname": cable.nic, "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
             "mtu": 1500, "operstate": "UP", "link_type": "ether", "address": cable.mac,
             "parentbus": "pci", "parentdev": f"0000:5d:00.{n}"}
        )  # fmt: skip
    links.append(
        {"ifindex": len(links) + 1, "ifname": "usb0", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1500,
         "operstate": "DOWN", "link_type": "ether", "address": "0a:ca:fe:00:00:01", "parentbus": "usb",
         "parentdev": "1-1:1.0"}
    )  # fmt: skip
    return links


def build_report(server: Server) -> dict[str, Any]:
    """The report document the validation image POSTs (schema in iso/README.md)."""
    links = ip_link_json(server)
    return {
        "schema_version": 1,
        "device_id": str(server.device_id),
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hardware": {
            "manufacturer": server.manufacturer,
            "model": server.model,
            "serial": server.serial,
            "uuid": server.uuid.lower(),
            "sku": "867959-B21",
            "family": "ProLiant",
            "bios_version": "U32",
            "chassis_serial": server.serial,
            "cpu_count": 2,
            "memory_total_kib": 32 * 1024 * 1024,
        },
        "lldp": lldpctl_json(server),
        "interfaces": [
            {
                "name": link["ifname"],
                "mac": link["address"],
                "permanent_mac": None,
                "operstate": link["operstate"],
                "carrier": link["operstate"] == "UP",
                "kind": None,
                "parentbus": link.get("parentbus"),
                "parentdev": link.get("parentdev"),
            }
            for link in links
            if link["link_type"] == "ether"
        ],
        "raw": {"dmidecode": dmidecode_text(server), "ip_link": links, "ip_addr": []},
        "agent": {
            "version": 1,
            "kernel": "simulated",
            "listened_on": [cable.nic for cable in server.cables],
            "firmware_lldp_stopped": [],
            "lldp_wait_s": 0,
            "lldp_waited_s": 0,
            "errors": [],
        },
    }
