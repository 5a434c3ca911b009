"""The BMC's identity before any credential, on the real stack: provisioning pins the certificate and records the
service UUID on first contact, and refuses (provisioning_failed, journal, nothing sent) a BMC that is not the one
NetBox knows. Checked through pynetbox and the mock iLO's own counters."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import Any

import pynetbox
import pytest

from integration.stages.conftest import SRV001_BMC_MAC, Stages, ca_path, cf, journal

pytestmark = [pytest.mark.stack, pytest.mark.slow]

FACTORY_CERTS = {"BM_BMC_VALIDATE_CERTS": "false", "BM_BMC_CA_PATH": ""}  # the day-one case: trust on first use


def provision_srv001(stages: Stages, netbox: pynetbox.api, **env: str) -> Any:
    """srv001's lease, discovery and provisioning; its NetBox record after them."""
    stages.publish("dhcp_lease", {"mac": SRV001_BMC_MAC, "ip": "10.1.100.21", "hostname": "ilo-srv001"})
    assert stages.run("discovery", "-e", stages.batch_file(stages.take("dhcp_lease"))).rc == 0
    run = stages.run("provisioning", "-e", stages.batch_file(stages.take("device_discovered")), **env)
    return run, netbox.dcim.devices.get(name="srv001")


def fleet_sha256() -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(Path(ca_path()).read_text())).hexdigest()


def test_first_contact_pins_the_certificate_and_records_the_service_uuid(
    netbox: pynetbox.api, stages: Stages, fleet: Any
) -> None:
    run, srv = provision_srv001(stages, netbox, **FACTORY_CERTS)
    assert run.rc == 0, run.output()
    assert cf(srv, "lifecycle_state") == "validating"
    assert cf(srv, "bmc_tls_sha256") == fleet_sha256()
    assert cf(srv, "bmc_uuid") == fleet[0].uuid.lower()


def test_a_bmc_with_another_certificate_gets_nothing_and_the_device_says_why(
    netbox: pynetbox.api, stages: Stages, fleet: Any
) -> None:
    srv = netbox.dcim.devices.get(name="srv001")
    srv.update({"custom_fields": {"bmc_tls_sha256": "ab" * 32}})  # pinned earlier; now another certificate answers
    run, srv = provision_srv001(stages, netbox, **FACTORY_CERTS)
    assert run.rc != 0
    assert cf(srv, "lifecycle_state") == "provisioning_failed"
    assert cf(srv, "bmc_tls_sha256") == "ab" * 32  # an operator's decision to change, not ours
    assert "bmc_identity" in journal(netbox, srv)[-1] and "another TLS certificate" in journal(netbox, srv)[-1]
    counters = fleet.counters(0)
    assert counters["requests"] == {} and counters["auth_failures"] == 0  # no request ever reached it
    [failed] = stages.events("stage_failed")
    assert failed["data"]["reason"] == "bmc_identity"


def test_a_bmc_stating_another_uuid_gets_no_credential(netbox: pynetbox.api, stages: Stages, fleet: Any) -> None:
    srv = netbox.dcim.devices.get(name="srv001")
    srv.update({"custom_fields": {"bmc_uuid": "00000000-0000-4000-8000-000000000001"}})  # known from purchase data
    run, srv = provision_srv001(stages, netbox)
    assert run.rc != 0
    assert cf(srv, "lifecycle_state") == "provisioning_failed"
    assert "states service UUID" in journal(netbox, srv)[-1]
    counters = fleet.counters(0)
    assert counters["requests"] == {"GET": 1}  # the service root, without credentials
    assert counters["resets"] == {} and counters["boot_override_history"] == []
