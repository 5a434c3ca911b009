"""MAC normalisation (module_utils/_mac.py) and the bm.lifecycle.mac filter."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.bm.lifecycle.plugins.filter.mac import FilterModule
from ansible_collections.bm.lifecycle.plugins.module_utils._mac import MacError, normalize_mac

CANON = "94:40:c9:5e:07:b0"


@pytest.mark.parametrize(
    "spelling",
    [
        "94:40:c9:5e:07:b0",
        "94:40:C9:5E:07:B0",
        "94-40-c9-5e-07-b0",
        "9440.c95e.07b0",
        "9440.C95E.07B0",
        "9440c95e07b0",
        "9440C95E07B0",
        "94:40:c9:5e:7:b0",  # ISC dhcpd binary-to-ascii drops leading zeros
        " 94:40:c9:5e:07:b0\n",
    ],
)
def test_spellings_normalise_to_one_form(spelling: str) -> None:
    assert normalize_mac(spelling) == CANON


def test_unpadded_everywhere() -> None:
    assert normalize_mac("0:1:2:a:b:c") == "00:01:02:0a:0b:0c"


@pytest.mark.parametrize(
    ("style", "upper", "expected"),
    [
        ("colon", True, "94:40:C9:5E:07:B0"),
        ("dash", False, "94-40-c9-5e-07-b0"),
        ("cisco", False, "9440.c95e.07b0"),
        ("bare", True, "9440C95E07B0"),
    ],
)
def test_styles(style: str, upper: bool, expected: str) -> None:
    assert normalize_mac(CANON, style=style, upper=upper) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("94:40:c9:5e:07", "expected 6 groups"),
        ("94:40:c9:5e:07:b0:11", "expected 6 groups"),
        ("94:40-c9:5e:07:b0", "expected 6 groups"),  # mixed separators
        ("94:40:c9:5e:007:b0", "expected 6 groups"),
        ("9440.c95e.7b0", "expected 6 groups"),
        ("9440c95e07b", "expected 6 groups"),
        ("zz:40:c9:5e:07:b0", "characters other than hex"),
        (None, "expected a string, got NoneType"),
        (944, "expected a string, got int"),
    ],
)
def test_invalid_values_say_why(value: object, reason: str) -> None:
    with pytest.raises(MacError, match=reason):
        normalize_mac(value)


def test_unknown_style() -> None:
    with pytest.raises(MacError, match="unknown MAC style"):
        normalize_mac(CANON, style="eui64")


@given(st.binary(min_size=6, max_size=6), st.sampled_from(["colon", "dash", "cisco", "bare"]), st.booleans())
def test_round_trip(octets: bytes, style: str, upper: bool) -> None:
    canon = ":".join(f"{b:02x}" for b in octets)
    spelled = normalize_mac(canon, style=style, upper=upper)
    assert normalize_mac(spelled) == canon
    unpadded = ":".join(f"{b:x}" for b in octets)
    assert normalize_mac(unpadded) == canon


@given(st.text(max_size=40))
def test_never_crashes_on_text(value: str) -> None:
    try:
        out = normalize_mac(value)
    except MacError:
        return
    assert len(out) == 17


def test_filter_plugin() -> None:
    mac: Any = FilterModule().filters()["mac"]
    assert mac("9440.C95E.07B0", upper=True) == "94:40:C9:5E:07:B0"
    with pytest.raises(AnsibleFilterError, match="invalid MAC address"):
        mac("not-a-mac")
