# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bm.lifecycle.lldp_neighbors filter: a thin wrapper over module_utils/_validation_parsers.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import lldp_neighbors as _parse

DOCUMENTATION = r"""
name: lldp_neighbors
author: bm-lifecycle developers
version_added: 0.1.0
short_description: Flatten C(lldpctl -f json) output into one record per LLDP neighbour
description:
  - Takes the parsed document of C(lldpctl -f json) (or C(-f json0)), or its JSON text, in every shape lldpctl
    produces it in, which changes with the number of interfaces and neighbours - no neighbour (an empty C(lldp)
    object), one interface as an object, several as a list, several neighbours on one interface (the same interface name
    repeated).
  - Returns a dictionary with C(neighbors), one item per neighbour, and C(warnings), a list of sentences saying
    what could not be used and why. Nothing in the input makes it fail except a value that is neither a mapping,
    a list nor a string; check C(warnings) rather than expecting an error.
  - Port ids may be an interface name (C(ifname)), a MAC (C(mac); returned canonical, lower case with colons) or a
    switch-local value (C(local)); management addresses may be IPv4 and IPv6.
options:
  _input:
    description: The parsed C(lldpctl -f json) document, or its text.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Neighbours from the validation report
  ansible.builtin.set_fact:
    lldp: "{{ report.lldp | bm.lifecycle.lldp_neighbors }}"

- name: Say what could not be parsed, without failing
  ansible.builtin.debug:
    msg: "{{ lldp.warnings }}"
  when: lldp.warnings | length > 0

- name: Switch port per server interface
  ansible.builtin.debug:
    msg: "{{ item.local_interface }} -> {{ item.chassis_name }} {{ item.port_id }}"
  loop: "{{ lldp.neighbors }}"
"""

RETURN = r"""
_value:
  description: The neighbours and the warnings.
  type: dict
  contains:
    neighbors:
      description: One item per neighbour; absent values are null.
      type: list
      elements: dict
      contains:
        local_interface:
          description: The server's interface the neighbour was heard on.
          type: str
        chassis_name:
          description: The neighbour's system name.
          type: str
        chassis_id:
          description: The neighbour's chassis id (canonical when a MAC).
          type: str
        chassis_id_type:
          description: The chassis id subtype as lldpd names it (C(mac), C(local), C(ip), ...).
          type: str
        port_id:
          description: The neighbour's port id (canonical when a MAC).
          type: str
        port_id_type:
          description: The port id subtype as lldpd names it (C(ifname), C(mac), C(local), ...).
          type: str
        port_descr:
          description: The neighbour's port description.
          type: str
        mgmt_ips:
          description: The neighbour's management addresses, IPv4 and IPv6.
          type: list
          elements: str
    warnings:
      description: What was skipped and why, one sentence each.
      type: list
      elements: str
  sample:
    neighbors:
      - local_interface: eno1
        chassis_name: tor-a.lab.example
        chassis_id: 0c:a0:00:00:01:01
        chassis_id_type: mac
        port_id: swp1
        port_id_type: ifname
        port_descr: srv001 eno1
        mgmt_ips: [192.0.2.11, "2001:db8:0:1::11"]
    warnings: []
"""


def lldp_neighbors(value: object) -> dict[str, list[Any]]:
    """Filter body: see DOCUMENTATION."""
    if not isinstance(value, dict | list | str | bytes):
        raise AnsibleFilterError(
            f"lldp_neighbors expects the lldpctl -f json document (a mapping) or its text, got {type(value).__name__}"
        )
    return _parse(value)


class FilterModule:
    """bm.lifecycle.lldp_neighbors."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"lldp_neighbors": lldp_neighbors}
