# Copyright: (c) 2026, bm-lifecycle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MAC address normalisation: the one home of it in bm.lifecycle.

Accepted spellings (surrounding blanks are ignored, case does not matter):

- six groups of one or two hex digits joined by ``:`` or ``-`` (``94:40:C9:5E:07:B0``, ``94-40-c9-5e-07-b0``, and ISC
  dhcpd's ``binary-to-ascii`` form that drops leading zeros, ``94:40:c9:5e:7:b0``);
- Cisco's three groups of four hex digits joined by ``.`` (``9440.c95e.07b0``);
- twelve hex digits without a separator (``9440C95E07B0``).

The canonical form is lower case with colons (``94:40:c9:5e:07:b0``), as Linux, ISC dhcpd and lldpd print it.
Anything else raises :class:`MacError` (a ``ValueError``) that says what was wrong.
Pure standard library, importable from modules (AnsiballZ), filters, the DHCP hook and tests.
"""

from __future__ import annotations

import re

STYLES = ("colon", "dash", "cisco", "bare")

_HEX = "0123456789abcdef"
_SIX_GROUPS = re.compile(r"^[0-9a-f]{1,2}([:-])[0-9a-f]{1,2}(?:\1[0-9a-f]{1,2}){4}$")
_CISCO = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")
_BARE = re.compile(r"^[0-9a-f]{12}$")


class MacError(ValueError):
    """The value is not a MAC address in any accepted spelling."""


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


def mac_octets(value: object) -> bytes:
    """Return the six octets of ``value`` or raise :class:`MacError`."""
    if not isinstance(value, str):
        raise MacError(f"invalid MAC address {_describe(value)}: expected a string, got {type(value).__name__}")
    text = value.strip().lower()
    if _SIX_GROUPS.match(text):
        groups = re.split(r"[:-]", text)
        return bytes(int(g, 16) for g in groups)
    if _CISCO.match(text):
        return bytes.fromhex(text.replace(".", ""))
    if _BARE.match(text):
        return bytes.fromhex(text)
    if not text:
        reason = "empty"
    elif any(c not in _HEX + ":-." for c in text):
        bad = sorted({c for c in text if c not in _HEX + ":-."})
        reason = "characters other than hex digits and separators: " + "".join(bad)[:16]
    else:
        reason = "expected 6 groups joined by ':' or '-', 3 groups of 4 joined by '.', or 12 hex digits"
    raise MacError(f"invalid MAC address {_describe(value)}: {reason}")


def normalize_mac(value: object, style: str = "colon", upper: bool = False) -> str:
    """Return ``value`` in canonical form (``style='colon'``: ``94:40:c9:5e:07:b0``).

    ``style`` is one of ``colon``, ``dash`` (``94-40-c9-5e-07-b0``), ``cisco`` (``9440.c95e.07b0``) or ``bare``
    (``9440c95e07b0``); ``upper=True`` returns upper-case hex digits (NetBox prints MACs that way).
    """
    if style not in STYLES:
        raise MacError(f"unknown MAC style {style!r}: expected one of {', '.join(STYLES)}")
    digits = mac_octets(value).hex()
    if style == "colon":
        text = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    elif style == "dash":
        text = "-".join(digits[i : i + 2] for i in range(0, 12, 2))
    elif style == "cisco":
        text = ".".join(digits[i : i + 4] for i in range(0, 12, 4))
    else:
        text = digits
    return text.upper() if upper else text
