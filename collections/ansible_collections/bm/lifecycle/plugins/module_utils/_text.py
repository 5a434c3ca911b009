# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text helpers of module_utils and the event sources: a value quoted in an error message, strict JSON.

Standard library only and cheap to import (the NetBox client, the envelope and the webhook use it). The DHCP hook
(``files/bm_lease_hook.py``) imports nothing from module_utils and keeps its own copies.
"""

from __future__ import annotations

import json
from typing import Any


def short(value: object, limit: int = 300) -> str:
    """``value`` for an error message: a string as it is, anything else as JSON (else repr), cut to ``limit``."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text: str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and -Infinity (``ValueError``), which JSON does not have."""
    return json.loads(text, parse_constant=_reject_constant)
