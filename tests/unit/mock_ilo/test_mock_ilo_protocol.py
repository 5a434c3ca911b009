"""iLO 5 protocol behaviour: auth, sessions, URIs, ETags, envelopes, faults."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest
import requests

from bm_mock_ilo.testing import FleetHandle, RedfishClient, message_ids, start_fleet

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def test_root_needs_no_auth_and_everything_else_does(fleet: FleetHandle) -> None:
    anonymous = RedfishClient(fleet[0])
    root = anonymous.get("/redfish/v1/")
    assert root.status_code == 200
    assert root.json()["Vendor"] == "HPE"
    assert root.json()["Oem"]["Hpe"]["Manager"][0]["ManagerType"] == "iLO 5"
    denied = anonymous.get("/redfish/v1/Systems/1")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "iLO.0.10.ExtendedInfo"
    assert message_ids(denied) == ["Base.1.4.NoValidSession"]
    wrong = RedfishClient(fleet[0], ("Administrator", "wrong")).get("/redfish/v1/Systems/1")
    assert wrong.status_code == 401
    assert fleet.counters(0)["auth_failures"] == 1


def test_metadata_and_odata_documents(fleet: FleetHandle) -> None:
    anonymous = RedfishClient(fleet[0])
    metadata = anonymous.get("/redfish/v1/$metadata")
    assert metadata.status_code == 200
    assert "ComputerSystem.v1_10_0" in metadata.text
    assert anonymous.get("/redfish/v1/odata").json()["value"]
    assert anonymous.get("/redfish").json() == {"v1": "/redfish/v1/"}


def test_session_login_logout(fleet: FleetHandle) -> None:
    bmc = fleet[0]
    anonymous = RedfishClient(bmc)
    login = anonymous.post("/redfish/v1/SessionService/Sessions/", {"UserName": bmc.username, "Password": bmc.password})
    assert login.status_code == 201
    token, location = login.headers["X-Auth-Token"], login.headers["Location"]
    assert len(token) == 32
    assert location.startswith(f"{bmc.base_url}/redfish/v1/SessionService/Sessions/administrator")
    assert login.json()["Oem"]["Hpe"]["MySession"] is True
    headers = {"X-Auth-Token": token}
    assert anonymous.get("/redfish/v1/Systems/1", headers=headers).status_code == 200
    path = location.removeprefix(bmc.base_url)
    assert anonymous.get(path, headers=headers).json()["UserName"] == "Administrator"
    assert anonymous.request("DELETE", path, headers=headers).status_code == 200
    assert anonymous.get("/redfish/v1/Systems/1", headers=headers).status_code == 401


def test_legacy_sessions_uri_and_bad_login(fleet: FleetHandle) -> None:
    bmc = fleet[0]
    anonymous = RedfishClient(bmc)
    assert anonymous.post("/redfish/v1/Sessions", {"UserName": bmc.username, "Password": bmc.password}).ok
    bad = anonymous.post("/redfish/v1/Sessions", {"UserName": bmc.username, "Password": "nope"})
    assert bad.status_code == 401


def test_session_cap_and_idle_expiry(fleet: FleetHandle) -> None:
    bmc = fleet[0]
    anonymous = RedfishClient(bmc)
    credentials = {"UserName": bmc.username, "Password": bmc.password}
    tokens = [anonymous.post("/redfish/v1/SessionService/Sessions", credentials).headers["X-Auth-Token"] for _ in "abc"]
    capped = anonymous.post("/redfish/v1/SessionService/Sessions", credentials)
    assert capped.status_code == 503
    assert message_ids(capped) == ["Base.1.4.SessionLimitExceeded"]
    fleet.set_state(0, Settings={"session_timeout": 0.2})
    time.sleep(0.3)
    assert anonymous.get("/redfish/v1/Systems/1", headers={"X-Auth-Token": tokens[0]}).status_code == 401
    assert anonymous.post("/redfish/v1/SessionService/Sessions", credentials).status_code == 201


@pytest.mark.parametrize("path", ["/redfish/v1/systems/1", "/REDFISH/V1/SYSTEMS/1/", "/redfish/v1/Systems/1/"])
def test_uris_are_case_insensitive_and_slash_tolerant(client: RedfishClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.id"] == "/redfish/v1/Systems/1/"  # iLO's form, whichever form the request used
    assert body["Links"]["Chassis"][0]["@odata.id"] == "/redfish/v1/Chassis/1/"


def test_weak_etag_and_if_match_never_required(client: RedfishClient) -> None:
    response = client.get("/redfish/v1/Systems/1")
    etag = response.headers["ETag"]
    assert etag.startswith('W/"')
    assert response.json()["@odata.etag"] == etag
    assert response.headers["Allow"] == "GET, HEAD, PATCH"
    assert response.headers["OData-Version"] == "4.0"
    body = {"IndicatorLED": "Lit"}
    assert client.patch("/redfish/v1/Systems/1", body).status_code == 200
    assert client.patch("/redfish/v1/Systems/1", body, headers={"If-Match": etag}).status_code == 200
    assert client.patch("/redfish/v1/Systems/1", body, headers={"If-Match": '"ABCDEF01"'}).status_code == 200
    too_long = client.patch("/redfish/v1/Systems/1", body, headers={"If-Match": "W/" + "A" * 70})
    assert message_ids(too_long) == ["iLO.2.15.ETagTooLong"]


def test_head_has_headers_and_no_body(client: RedfishClient) -> None:
    response = client.request("HEAD", "/redfish/v1/Chassis/1/Thermal")
    assert response.status_code == 200
    assert response.headers["ETag"]
    assert response.content == b""


def test_unknown_uri_and_method(client: RedfishClient) -> None:
    missing = client.get("/redfish/v1/Systems/2")
    assert missing.status_code == 404
    assert message_ids(missing) == ["Base.1.4.ResourceMissingAtURI"]
    wrong = client.request("DELETE", "/redfish/v1/Systems/1")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET, HEAD, PATCH"


def test_fault_503_burst_and_latency(fleet: FleetHandle, client: RedfishClient) -> None:
    fleet.set_faults(0, unavailable_count=2, latency_ms=150)
    statuses = [client.get("/redfish/v1/Systems/1").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    started = time.monotonic()
    client.get("/redfish/v1/")
    assert time.monotonic() - started >= 0.15
    fleet.clear_faults(0)
    assert fleet.counters(0)["injected_503"] == 2


def test_fault_503_and_stall_shares_are_exact_and_spread(fleet: FleetHandle, client: RedfishClient) -> None:
    fleet.set_faults(0, share_503=1.0)
    assert {client.get("/redfish/v1/Systems/1").status_code for _ in range(5)} == {503}
    fleet.set_faults(0, share_503=0.0, share_stall=1.0, stall_ms=100)
    started = time.monotonic()
    assert [client.get("/redfish/v1/").status_code for _ in range(3)] == [200] * 3
    assert time.monotonic() - started >= 0.3
    fleet.set_faults(0, share_503=0.3, share_stall=0.0)
    statuses = [client.get("/redfish/v1/").status_code for _ in range(200)]
    assert statuses.count(503) == 60  # round(0.3 * 200): the share is exact, whatever the timing
    assert "503,503" not in ",".join(map(str, statuses))  # spread evenly, never two in a row at 0.3
    counters = fleet.counters(0)
    assert (counters["injected_503"], counters["injected_stalls"]) == (5 + statuses.count(503), 3)
    fleet.clear_faults(0)
    assert client.get("/redfish/v1/").status_code == 200


def test_fault_shares_out_of_range_change_nothing(fleet: FleetHandle, client: RedfishClient) -> None:
    fleet.set_faults(0, share_503=0.2)
    for body in ({"share_503": 1.5}, {"share_stall": -0.1}, {"share_stall": 0.9}):
        answer = client.request("PUT", "/_mock/faults", json=body)
        assert answer.status_code == 400
        assert "share_503 and share_stall" in answer.text
    faults = fleet.state(0)["Faults"]
    assert (faults["share_503"], faults["share_stall"]) == (0.2, 0.0)


def test_fleet_stops_promptly_with_a_request_held_forever(cert_dir: Path) -> None:
    with start_fleet(1, state_dir=cert_dir) as fleet:
        fleet.set_faults(0, latency_ms=10**9)  # a BMC that never answers, as the chaos suite's dead one
        held = threading.Thread(target=_request_ignoring_errors, args=(RedfishClient.admin(fleet[0]),), daemon=True)
        held.start()
        while fleet.counters(0)["requests"].get("GET", 0) < 1:
            time.sleep(0.05)
        started = time.monotonic()
    assert time.monotonic() - started < 10  # aiohttp's default shutdown_timeout would hold the stop for 60 s


def _request_ignoring_errors(client: RedfishClient) -> None:
    with contextlib.suppress(requests.RequestException):
        client.get("/redfish/v1/Systems/1")


def test_fault_dropped_connections(fleet: FleetHandle, client: RedfishClient) -> None:
    fleet.set_faults(0, drop_count=1)
    with pytest.raises(requests.ConnectionError):
        client.get("/redfish/v1/Systems/1")
    assert client.get("/redfish/v1/Systems/1").status_code == 200
    assert fleet.counters(0)["injected_drops"] == 1


def test_fault_lockout(fleet: FleetHandle, client: RedfishClient) -> None:
    fleet.set_faults(0, lockout_seconds=30)
    locked = client.get("/redfish/v1/Systems/1")
    assert locked.status_code == 401
    assert message_ids(locked) == ["iLO.2.15.LoginAttemptDelayed"]
    fleet.clear_faults(0)
    assert client.get("/redfish/v1/Systems/1").status_code == 200


def test_faults_are_per_bmc(fleet: FleetHandle) -> None:
    fleet.set_faults(0, unavailable_seconds=30)
    other = RedfishClient.admin(fleet[1])
    assert other.get("/redfish/v1/Systems/1").status_code == 200
    assert fleet.state(0)["Faults"]["unavailable_seconds"] > 0


def test_control_surface_rejects_bad_requests(fleet: FleetHandle, client: RedfishClient) -> None:
    unknown = client.request("PUT", "/_mock/faults", json={"bogus": 1})
    assert unknown.status_code == 400
    assert client.get("/_mock/nothing").status_code == 404
    assert client.request("PATCH", "/_mock/state", json={"PowerState": "Maybe"}).status_code == 400
    assert len(client.get("/_mock/fleet").json()) == 2


def test_manager_reset_drops_sessions_and_answers_503_meanwhile(fleet: FleetHandle, client: RedfishClient) -> None:
    bmc = fleet[0]
    credentials = {"UserName": bmc.username, "Password": bmc.password}
    login = RedfishClient(bmc).post("/redfish/v1/SessionService/Sessions", credentials)
    token = login.headers["X-Auth-Token"]
    reset = client.post("/redfish/v1/Managers/1/Actions/Manager.Reset", {"ResetType": "GracefulRestart"})
    assert reset.status_code == 200
    busy = client.get("/redfish/v1/")
    assert busy.status_code == 503
    assert message_ids(busy) == ["Base.1.4.ServiceTemporarilyUnavailable"]
    assert int(busy.headers["Retry-After"]) >= 1
    deadline = time.monotonic() + 5
    while client.get("/redfish/v1/").status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert RedfishClient(bmc).get("/redfish/v1/Systems/1", headers={"X-Auth-Token": token}).status_code == 401
    assert fleet.counters(0)["manager_resets"] == 1


def test_certificate_verifies_as_its_own_ca(fleet: FleetHandle, cert_dir: Path) -> None:
    response = requests.get(f"{fleet[0].base_url}/redfish/v1/", verify=str(cert_dir / "cert.pem"), timeout=10)
    assert response.json()["Product"] == "ProLiant DL360 Gen10 Plus"
