# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tenant option of the modules that read or change devices, documented once (defined in _module.py)."""

from __future__ import annotations


class ModuleDocFragment:
    """``extends_documentation_fragment: bm.lifecycle.tenant``."""

    DOCUMENTATION = r"""
options:
  tenant:
    description:
      - Only devices of this tenant (slug or name) are read or touched; any other device is refused with a warning.
      - If not set, the environment variable E(BM_TENANT) is used, then V(baremetal-staging).
    type: str
"""
