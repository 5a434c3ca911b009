# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bm.lifecycle.dmidecode filter: a thin wrapper over module_utils/_validation_parsers.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import dmidecode as _parse

DOCUMENTATION = r"""
name: dmidecode
author: bm-lifecycle developers
version_added: 0.1.0
short_description: Summarise C(dmidecode) text - identity, BIOS, chassis, CPU and memory
description:
  - Takes the full text of C(dmidecode) (no options) and returns the system's identity (manufacturer, product
    name, serial, UUID, SKU, family), BIOS, chassis, and a CPU and memory summary.
  - dmidecode's spellings of "nothing" (C(Not Specified), C(To Be Filled By O.E.M.), C(Default string), C(None),
    all-zero UUIDs, ...) become null.
  - Text without SMBIOS records (a VM without SMBIOS, C(/dev/mem) missing) gives nulls and a warning, not an error.
options:
  _input:
    description: The text dmidecode printed.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Hardware of the validated server
  ansible.builtin.set_fact:
    hw: "{{ report.raw.dmidecode | bm.lifecycle.dmidecode }}"

- name: Model and serial for NetBox
  ansible.builtin.debug:
    msg: >-
      {{ hw.manufacturer }} {{ hw.product_name }} {{ hw.serial }},
      {{ hw.cpu.populated }} CPUs, {{ hw.memory.total_mb }} MB
"""

RETURN = r"""
_value:
  description: The summary; absent values are null.
  type: dict
  contains:
    manufacturer:
      description: System manufacturer (type 1).
      type: str
    product_name:
      description: System product name, the model (type 1).
      type: str
    version:
      description: System version (type 1).
      type: str
    serial:
      description: System serial number (type 1).
      type: str
    uuid:
      description: System UUID (type 1).
      type: str
    sku:
      description: System SKU number (type 1), HPE's product number.
      type: str
    family:
      description: System family (type 1).
      type: str
    bios:
      description: C(vendor), C(version), C(release_date) (type 0).
      type: dict
    chassis:
      description: C(manufacturer), C(type), C(serial), C(asset_tag) (type 3).
      type: dict
    cpu:
      description: C(sockets), C(populated), C(model) (the first populated socket's), C(models), C(cores) and
        C(threads) (sums over the populated sockets; null if not reported).
      type: dict
    memory:
      description: C(slots), C(modules) (populated), C(total_mb), C(module_sizes_mb) (type 17).
      type: dict
    smbios_version:
      description: The SMBIOS version dmidecode found.
      type: str
    warnings:
      description: What was missing or skipped, one sentence each.
      type: list
      elements: str
  sample:
    manufacturer: HPE
    product_name: ProLiant DL360 Gen10
    serial: CZJ0000000
    uuid: 30373237-3132-5a43-4a30-303030303030
    cpu: {sockets: 2, populated: 2, model: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", cores: 4, threads: 4}
    memory: {slots: 1, modules: 1, total_mb: 1536, module_sizes_mb: [1536]}
"""


def dmidecode(value: object) -> dict[str, Any]:
    """Filter body: see DOCUMENTATION."""
    if not isinstance(value, str | bytes):
        raise AnsibleFilterError(f"dmidecode expects the text dmidecode printed, got {type(value).__name__}")
    return _parse(value)


class FilterModule:
    """bm.lifecycle.dmidecode."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"dmidecode": dmidecode}
