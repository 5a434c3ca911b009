"""The one Redfish transport (aiohttp) against in-process mock iLOs: a step's BMCs over one batch, TLS, retries,
requests that never left, sessions, and the metrics poller through the same client."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils import _redfish
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import (
    BMC_ARGUMENT_SPEC,
    SYSTEM,
    ComputerSystem,
    HTTPPool,
    RedfishBatch,
    RedfishClient,
    RedfishError,
    RedfishIdentityError,
    RedfishTLSError,
    RedfishUnavailableError,
    on_bmcs,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._redfish_metrics import run_poll
from helpers import poll_targets

testing = pytest.importorskip("bm_mock_ilo.testing")
Settings = pytest.importorskip("bm_mock_ilo").Settings


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mock-ilo-cert")


@pytest.fixture(scope="module")
def fleet(cert_dir: Path) -> Iterator[Any]:
    """Three BMCs (iLO 5, iLO 6, iLO 5)."""
    with testing.start_fleet(3, settings=[Settings(), Settings(model="ilo6")], state_dir=cert_dir) as handle:
        yield handle


def client_of(bmc: Any, cert_dir: Path, **kwargs: Any) -> RedfishClient:
    options: dict[str, Any] = {"port": bmc.port, "ca_path": str(cert_dir / "cert.pem"), "retries": 2}
    options.update(kwargs)
    return RedfishClient(bmc.address, bmc.username, bmc.password, backoff=0.01, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def item(name: str, address: str) -> dict[str, Any]:
    return {"entry": {}, "device": {"id": 1, "name": name}, "status": "active", "facts": {"oob_ip": address}}


def test_a_step_reads_every_bmc_through_one_batch(fleet: Any, cert_dir: Path) -> None:
    credentials = {b.name: {"username": b.username, "password": b.password} for b in fleet}
    credentials["gone"] = {"username": "u", "password": "secret-gone"}
    params: dict[str, Any] = {key: option.get("default") for key, option in BMC_ARGUMENT_SPEC.items()}
    params.update(ca_path=str(cert_dir / "cert.pem"), credentials=credentials, retries=1)
    items = [item(b.name, f"{b.address}:{b.port}") for b in fleet]
    items.append(item("gone", f"127.0.0.1:{free_port()}"))

    def work(client: RedfishClient, one: dict[str, Any]) -> None:
        one["facts"]["power"] = ComputerSystem(client.get(SYSTEM)).power_state

    on_bmcs(params, items, work, print)
    assert [i["status"] for i in items] == ["active"] * 3 + ["failed"]
    assert all(i["facts"]["power"] in ("On", "Off") for i in items[:3])
    assert items[3]["failure"]["reason"] == "unreachable" and "secret-gone" not in items[3]["msg"]
    assert items[3]["facts"]["bmc_requests"] == 2  # one retry of a request that never left


def certificate_sha256(cert_dir: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert((cert_dir / "cert.pem").read_text())).hexdigest()


def test_first_contact_pins_the_certificate_and_learns_the_service_uuid(fleet: Any, cert_dir: Path) -> None:
    with client_of(fleet[0], cert_dir, ca_path=None, validate_certs=False) as client:
        learned = client.identify(None)
        root = client.get("/redfish/v1/")
        assert client.identify({"tls_sha256": learned["tls_sha256"]}) == {}  # known: nothing to learn, no request
        assert client.requests == 2
    assert learned == {"tls_sha256": certificate_sha256(cert_dir), "uuid": root["UUID"].lower()}


def test_a_bmc_with_another_certificate_gets_no_request_at_all(fleet: Any, cert_dir: Path, tmp_path: Path) -> None:
    bmc = fleet[0]
    with testing.start_fleet(1, state_dir=tmp_path) as impostors:  # its own self-signed certificate
        impostor = impostors[0]
        before = dict(impostors.counters(0)["requests"])
        with RedfishClient(impostor.address, bmc.username, "secret-pw", port=impostor.port, validate_certs=False,
                           retries=3, backoff=0.01) as client:  # fmt: skip
            client.identify({"tls_sha256": certificate_sha256(cert_dir)})
            with pytest.raises(RedfishIdentityError, match="another TLS certificate") as error:
                client.get(SYSTEM)
            assert client.requests == 1  # never retried
        assert dict(impostors.counters(0)["requests"]) == before  # the request never left
    assert "secret-pw" not in str(error.value) and "clear the device's bmc_tls_sha256" in str(error.value)


def test_a_bmc_stating_another_service_uuid_gets_no_credential(fleet: Any, cert_dir: Path) -> None:
    with client_of(fleet[0], cert_dir) as client:
        with pytest.raises(RedfishIdentityError, match=r"states service UUID .* NetBox knows 00000000-"):
            client.identify({"uuid": "00000000-0000-0000-0000-000000000000"})
        assert client.requests == 1  # the unauthenticated service root only


def test_a_step_fails_a_bmc_that_is_not_the_one_netbox_knows(fleet: Any, cert_dir: Path) -> None:
    params: dict[str, Any] = {key: option.get("default") for key, option in BMC_ARGUMENT_SPEC.items()}
    credentials = {b.name: {"username": b.username, "password": b.password} for b in fleet}
    params.update(validate_certs=False, credentials=credentials, retries=1)
    items = [item(b.name, f"{b.address}:{b.port}") for b in fleet]
    items[1]["facts"]["bmc_identity"] = {"tls_sha256": "ab" * 32}
    items[2]["facts"]["bmc_identity"] = {"tls_sha256": certificate_sha256(cert_dir)}

    def work(client: RedfishClient, one: dict[str, Any]) -> None:
        one["facts"]["power"] = ComputerSystem(client.get(SYSTEM)).power_state

    on_bmcs(params, items, work, print)
    assert [i["status"] for i in items] == ["active", "failed", "active"]
    assert items[1]["failure"]["reason"] == "bmc_identity" and "power" not in items[1]["facts"]
    assert items[0]["facts"]["bmc_identity_learned"]["tls_sha256"] == certificate_sha256(cert_dir)
    assert "bmc_identity_learned" not in items[2]["facts"]


def test_clients_of_one_batch_share_its_session(fleet: Any, cert_dir: Path) -> None:
    with RedfishBatch(4) as batch:
        clients = [client_of(b, cert_dir, batch=batch) for b in fleet]
        assert {c.get(SYSTEM)["Id"] for c in clients} == {"1"}
        pools = {id(getattr(c.transport, "pool", None)) for c in clients}
        assert pools == {id(batch.pool)}


def test_an_unknown_certificate_is_a_tls_error_never_retried(fleet: Any) -> None:
    with RedfishClient(fleet[0].address, "u", "secret-pw", port=fleet[0].port, retries=3) as client:
        with pytest.raises(RedfishTLSError) as error:
            client.get(SYSTEM)
        assert client.requests == 1
    assert "failed verification" in str(error.value) and "ca_path" in str(error.value)
    assert "secret-pw" not in str(error.value)


def test_a_post_that_never_left_is_retried_then_unreachable() -> None:
    with RedfishClient("127.0.0.1", "u", "p", port=free_port(), retries=2, backoff=0.01) as client:
        with pytest.raises(RedfishUnavailableError, match="still failing after 3 attempt"):
            client.post(f"{SYSTEM}/Actions/ComputerSystem.Reset", {"ResetType": "On"})
        assert client.requests == 3


def test_a_503_is_retried_over_aiohttp(fleet: Any, cert_dir: Path) -> None:
    before = fleet.counters(2)["injected_503"]
    fleet.set_faults(2, unavailable_count=1)
    with client_of(fleet[2], cert_dir) as client:
        assert client.get(SYSTEM)["Id"] == "1"
        assert client.retried == 1
    assert fleet.counters(2)["injected_503"] == before + 1


def test_a_session_is_opened_and_deleted(fleet: Any, cert_dir: Path) -> None:
    with client_of(fleet[0], cert_dir, auth="session") as client:
        client.get(SYSTEM)
        assert client._token  # the session is open
        assert fleet.state(0)["Sessions"] == 1
    assert fleet.state(0)["Sessions"] == 0


def test_the_metrics_poller_reads_through_the_same_client(fleet: Any, cert_dir: Path) -> None:
    targets = poll_targets(fleet, str(cert_dir / "cert.pem"))
    targets[2]["password"] = "wrong-secret"
    results = run_poll(targets, concurrency=2, deadline=10, retries=1, backoff=0.01)
    assert [r["ok"] for r in results] == [True, True, False]
    assert results[0]["metrics"]["thermal"]["source"] == "Thermal"
    assert results[1]["metrics"]["thermal"]["source"] == "ThermalSubsystem"
    assert "HTTP 401: wrong credentials" in results[2]["error"] and "wrong-secret" not in results[2]["error"]


def test_without_aiohttp_a_redfish_call_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_redfish, "HAS_AIOHTTP", False)
    with pytest.raises(RedfishError, match="aiohttp is required"):
        HTTPPool(1)
    with pytest.raises(RedfishError, match="aiohttp is required"):
        on_bmcs({"concurrency": 2}, [item("a", "127.0.0.1")], lambda _c, _i: None, print)


def test_a_sync_call_from_inside_the_loop_is_refused(fleet: Any, cert_dir: Path) -> None:
    with RedfishBatch(1) as batch:
        client = client_of(fleet[0], cert_dir, batch=batch)

        async def inside() -> None:
            client.get(SYSTEM)

        with pytest.raises(RuntimeError, match="never return"):
            batch.run(inside())
    assert asyncio.iscoroutinefunction(client.get_async)
