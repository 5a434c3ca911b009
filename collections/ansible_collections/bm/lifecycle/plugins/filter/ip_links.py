# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bm.lifecycle.ip_links filter: a thin wrapper over module_utils/_validation_parsers.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import ip_links as _parse

DOCUMENTATION = r"""
name: ip_links
author: bm-lifecycle developers
version_added: 0.1.0
short_description: The physical Ethernet interfaces, with canonical MACs, from C(ip -j link)
description:
  - Takes the parsed output of C(ip -d -j link) (preferred), C(ip -j link) or C(ip -j addr), or its JSON text.
  - Keeps the physical Ethernet interfaces and returns their MACs canonical (lower case with colons).
  - Excludes, each with its reason, loopback, non-Ethernet links (tun), virtual interfaces (bridge, VLAN, veth,
    bond, macvlan, dummy, ... from C(linkinfo.info_kind)), links stacked on or paired with another link, USB NICs
    (C(parentbus) usb - the BMC's virtual NIC, whose fixed MAC repeats across servers and would break MAC lookups),
    names matching O(exclude_names), and MACs in O(exclude_macs).
  - Without C(-d) the kind of a link is not in the output; the name rules then carry the decision.
options:
  _input:
    description: The parsed C(ip -j link) list, or its text.
    type: raw
    required: true
  exclude_names:
    description:
      - Regular expressions (searched) of interface names to exclude. Replaces the default list, which covers
        C(lo), C(br*), C(virbr*), C(docker*), C(veth*), C(tun*), C(tap*), C(bond*), C(team*), C(dummy*),
        C(vlan*), C(*.N) VLAN sub-interfaces, C(usbN), C(idrac) and predictable USB names such as
        C(enp0s20f0u1u6).
    type: list
    elements: str
  exclude_macs:
    description: MAC addresses (any spelling) to exclude, such as a vendor's fixed BMC USB NIC MAC.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Physical NICs of the validated server
  ansible.builtin.set_fact:
    nics: "{{ report.raw.ip_link | bm.lifecycle.ip_links }}"

- name: Their names and MACs
  ansible.builtin.debug:
    msg: "{{ nics.interfaces | items2dict(key_name='name', value_name='mac') }}"

- name: Also drop a known fixed MAC
  ansible.builtin.set_fact:
    nics: "{{ report.raw.ip_link | bm.lifecycle.ip_links(exclude_macs=['0a:ca:fe:00:00:01']) }}"
"""

RETURN = r"""
_value:
  description: The physical interfaces, what was excluded and why, and warnings.
  type: dict
  contains:
    interfaces:
      description:
        - C(name), C(mac) (canonical; the permanent address when the current one differs), C(current_mac),
          C(operstate), C(carrier) (bool), C(mtu), C(parentbus), C(parentdev), C(addresses) (CIDRs, from
          C(ip -j addr) input; else empty).
      type: list
      elements: dict
    excluded:
      description: C(name) and C(reason) of every link left out.
      type: list
      elements: dict
    warnings:
      description: Entries that could not be read, duplicate MACs, bad options; one sentence each.
      type: list
      elements: str
  sample:
    interfaces:
      - {name: eth1, mac: "94:40:c9:5e:7a:b0", current_mac: "94:40:c9:5e:7a:b0", operstate: UP, carrier: true,
         mtu: 1500, parentbus: pci, parentdev: "0000:00:03.0", addresses: []}
    excluded:
      - {name: usb0, reason: "USB NIC (the BMC's virtual NIC; its fixed MAC repeats across servers)"}
    warnings: []
"""


def ip_links(
    value: object, exclude_names: Sequence[str] | None = None, exclude_macs: Sequence[str] | None = None
) -> dict[str, list[Any]]:
    """Filter body: see DOCUMENTATION."""
    if not isinstance(value, list | str | bytes):
        raise AnsibleFilterError(f"ip_links expects the ip -j link list or its text, got {type(value).__name__}")
    for option, given in (("exclude_names", exclude_names), ("exclude_macs", exclude_macs)):
        if given is not None and (isinstance(given, str) or not isinstance(given, list | tuple)):
            raise AnsibleFilterError(f"ip_links: {option} must be a list of strings, got {type(given).__name__}")
    return _parse(value, exclude_names=exclude_names, exclude_macs=exclude_macs or ())


class FilterModule:
    """bm.lifecycle.ip_links."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"ip_links": ip_links}
