# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batch options of the stage step modules, documented once (defined once in module_utils/_module.py)."""

from __future__ import annotations


class ModuleDocFragment:
    """``extends_documentation_fragment: bm.lifecycle.batch``."""

    DOCUMENTATION = r"""
options:
  batch:
    description:
      - The stage's batch, as the previous step returned it (RV(batch)); the first step, M(bm.lifecycle.stage_batch),
        makes it from the rulebook's batch or from what an operator names.
      - Each item is one bus entry and what the stage learned about it; only the items with C(status=active) are worked
        on, the others are passed through unchanged. See docs/ARCHITECTURE.md, "The stage shape".
    type: list
    elements: dict
    required: true
attributes:
  check_mode:
    support: full
    description: Reads and reports what would change; writes nothing.
  diff_mode:
    support: none
    description: The items say what changed.
"""
