"""The DMTF Redfish Service Validator, offline with the vendored schemas, finds no failure."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bm_mock_ilo.testing import FleetHandle, RedfishClient
from helpers import ROOT, VENV_BIN

SCHEMAS = ROOT / "tests" / "fixtures" / "redfish-csdl"
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]


@pytest.mark.parametrize("authtype", ["Basic", "Session"])
def test_validator_reports_no_failure(
    authtype: str, fleet: FleetHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bmc = fleet[0]
    fleet.set_state(0, PowerState="On")
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
            f"\nRedfish Service Validator ({authtype} auth):"
            f" PASS {passed} WARN {warned} FAIL {failed} NOT TESTED {untested}"
        )
    failures = [line for line in result.stdout.splitlines() if "FAIL -" in line or "Could not access" in line]
    assert failed == 0, "\n".join(failures)
    assert result.returncode == 0
    assert passed > 700
    assert fleet.state(0)["Sessions"] == 1, "the validator's own session was not logged out"
    assert "Schema Error: Unable to locate the schema definition for the 'ComputerSystem" not in result.stdout
