# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bm.lifecycle.mac filter: a thin wrapper over module_utils/_mac.py."""

from __future__ import annotations

from collections.abc import Callable

from ansible.errors import AnsibleFilterError

from ansible_collections.bm.lifecycle.plugins.module_utils._mac import MacError, normalize_mac

DOCUMENTATION = r"""
name: mac
author: bm-lifecycle developers
version_added: 0.1.0
short_description: Normalise a MAC address to one canonical spelling
description:
  - Accepts colons, dashes, Cisco dots (C(9440.c95e.07b0)), no separator, upper or lower case, and ISC dhcpd's
    C(binary-to-ascii) form that drops leading zeros (C(94:40:c9:5e:7:b0)).
  - Returns the canonical form, lower case with colons (C(94:40:c9:5e:07:b0)), unless O(style) or O(upper)
    say otherwise.
  - Fails with a clear message for anything that is not a MAC address.
options:
  _input:
    description: The MAC address, in any accepted spelling.
    type: str
    required: true
  style:
    description: Output spelling.
    type: str
    choices: [colon, dash, cisco, bare]
    default: colon
  upper:
    description: Upper-case hex digits (NetBox prints MACs that way).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Canonical form of a lease's MAC
  ansible.builtin.debug:
    msg: "{{ '94:40:c9:5e:7:b0' | bm.lifecycle.mac }}"   # 94:40:c9:5e:07:b0

- name: NetBox spelling
  ansible.builtin.debug:
    msg: "{{ '9440.c95e.07b0' | bm.lifecycle.mac(upper=true) }}"   # 94:40:C9:5E:07:B0

- name: Normalise a list
  ansible.builtin.set_fact:
    macs: "{{ ['94-40-C9-5E-07-B0', '9440c95e07b1'] | map('bm.lifecycle.mac') | list }}"
"""

RETURN = r"""
_value:
  description: The MAC address in the requested spelling.
  type: str
  sample: 94:40:c9:5e:07:b0
"""


def mac(value: object, style: str = "colon", upper: bool = False) -> str:
    """Filter body: see DOCUMENTATION."""
    try:
        return normalize_mac(value, style=style, upper=bool(upper))
    except MacError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    """bm.lifecycle.mac."""

    def filters(self) -> dict[str, Callable[..., str]]:
        return {"mac": mac}
