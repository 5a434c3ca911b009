"""The DMTF Redfish Service Validator, offline with the vendored schemas, finds no failure on iLO 5 nor iLO 6."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bm_mock_ilo import Settings
from bm_mock_ilo.testing import FleetHandle, RedfishClient, start_fleet
from helpers import ROOT, VENV_BIN

SCHEMAS = ROOT / "tests" / "fixtures" / "redfish-csdl"
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]


@pytest.mark.parametrize(
    ("authtype", "model", "power_thermal"),
    [
        ("Basic", "ilo5", True),
        ("Session", "ilo5", True),
        ("Session", "ilo6", True),
        ("Basic", "ilo6", False),  # newer firmware without the deprecated Power and Thermal
    ],
)
def test_validator_reports_no_failure(
    authtype: str, model: str, power_thermal: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(model=model, power_thermal=power_thermal, post_seconds=0.3, manager_reset_seconds=0.5)
    with start_fleet(1, settings=settings, state_dir=tmp_path / "cert") as fleet:
        validate(fleet, authtype, model, tmp_path, capsys)


def validate(fleet: FleetHandle, authtype: str, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One validator run against BMC 0, with the host on, a medium inserted and a failed fan."""
    bmc = fleet[0]
    fleet.set_state(0, PowerState="On")
    fleet.set_faults(0, failed_fans=[3], failed_psus=[2])
    client = RedfishClient.admin(bmc)
    assert client.post("/redfish/v1/SessionService/Sessions", {"UserName": bmc.username, "Password": bmc.password}).ok
    client.patch("/redfish/v1/Managers/1/VirtualMedia/2", {"Image": "http://192.0.2.1/validate.iso"})
    result = subprocess.run(
        [
            str(VENV_BIN / "rf_service_validator"),
            "--rhost",
            bmc.base_url,
            "--user",
            bmc.username,
            "--password",
            bmc.password,
            "--authtype",
            authtype,
            "--logdir",
            str(tmp_path),
            "--schema_directory",
            str(SCHEMAS),
            "--skipschema",
            "--timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    match = re.search(r"\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*$", result.stdout, re.MULTILINE)
    assert match, result.stdout[-3000:] + result.stderr[-3000:]
    passed, warned, failed, untested = map(int, match.groups())
    with capsys.disabled():
        print(
            f"\nRedfish Service Validator ({model}, {authtype} auth):"
            f" PASS {passed} WARN {warned} FAIL {failed} NOT TESTED {untested}"
        )
    failures = [line for line in result.stdout.splitlines() if "FAIL -" in line or "Could not access" in line]
    assert failed == 0, "\n".join(failures)
    assert result.returncode == 0
    assert passed > 1000
    assert fleet.state(0)["Sessions"] == 1, "the validator's own session was not logged out"
    assert "Schema Error: Unable to locate the schema definition for the 'ComputerSystem" not in result.stdout
