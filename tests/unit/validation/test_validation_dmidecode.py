"""bm.lifecycle.dmidecode on real dmidecode captures (tests/fixtures/validation/dmidecode_*)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bm.lifecycle.plugins.filter.dmidecode import FilterModule
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_parsers import dmidecode

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "validation"
HPE = (FIXTURES / "dmidecode_qemu_hpe.txt").read_text()


def test_hpe_like_system() -> None:
    hw = dmidecode(HPE)
    assert hw["warnings"] == []
    assert (hw["manufacturer"], hw["product_name"], hw["serial"]) == ("HPE", "ProLiant DL360 Gen10", "CZJ0000000")
    assert hw["uuid"] == "30373237-3132-5a43-4a30-303030303030"
    assert (hw["sku"], hw["family"]) == ("867959-B21", "ProLiant")
    assert hw["bios"] == {"vendor": "HPE", "version": "U32", "release_date": "10/21/2025"}
    assert hw["chassis"]["serial"] == "CZJ0000000"
    assert hw["chassis"]["asset_tag"] is None  # "Not Specified"
    assert hw["cpu"] == {
        "sockets": 2,
        "populated": 2,
        "model": "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
        "models": ["Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"],
        "cores": 4,
        "threads": 4,
    }
    assert hw["memory"] == {"slots": 1, "modules": 1, "total_mb": 1536, "module_sizes_mb": [1536]}
    assert hw["smbios_version"] == "2.8"


def test_no_smbios_is_a_warning() -> None:
    hw = dmidecode((FIXTURES / "dmidecode_firecracker.txt").read_text())
    assert hw["product_name"] is None and hw["serial"] is None
    assert hw["cpu"]["sockets"] == 0 and hw["memory"]["total_mb"] is None
    assert hw["warnings"] == ["dmidecode: no SMBIOS records (Scanning /dev/mem for entry point.)"]


def test_empty_slots_and_unpopulated_sockets() -> None:
    """Real servers list empty DIMM slots and sockets; derived from the real capture by duplicating its records."""
    cpu = HPE.split("Handle 0x0400")[1].split("\n\n")[0]
    dimm = HPE.split("Handle 0x1100")[1].split("\n\n")[0]
    extra = (
        "\nHandle 0x0402"
        + cpu.replace("Populated, Enabled", "Unpopulated").replace("Proc 0", "Proc 3")
        + "\n\nHandle 0x1101"
        + dimm.replace("Size: 1536 MB", "Size: No Module Installed")
        + "\n\nHandle 0x1102"
        + dimm.replace("Size: 1536 MB", "Size: 32 GB")
        + "\n\n"
    )
    hw = dmidecode(HPE.replace("\nHandle 0x7F00", extra + "Handle 0x7F00"))
    assert hw["cpu"]["sockets"] == 3 and hw["cpu"]["populated"] == 2
    assert hw["memory"] == {"slots": 3, "modules": 2, "total_mb": 1536 + 32768, "module_sizes_mb": [1536, 32768]}


@pytest.mark.parametrize("placeholder", ["Not Specified", "To Be Filled By O.E.M.", "Default string", "0123456789"])
def test_placeholders_are_null(placeholder: str) -> None:
    hw = dmidecode(HPE.replace("Serial Number: CZJ0000000", f"Serial Number: {placeholder}", 1))
    assert hw["serial"] is None


def test_filter_plugin() -> None:
    flt = FilterModule().filters()["dmidecode"]
    assert flt(HPE)["product_name"] == "ProLiant DL360 Gen10"
    with pytest.raises(AnsibleFilterError, match="expects the text dmidecode printed"):
        flt({"not": "text"})
