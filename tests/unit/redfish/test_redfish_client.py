"""The Redfish client: retries, 401, If-Match, MessageId suffixes, ExtendedInfo, sessions, TLS choice."""

from __future__ import annotations

import http.client
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._redfish import (
    BMC_ARGUMENT_SPEC,
    NotSent,
    RedfishAuthError,
    RedfishClient,
    RedfishError,
    RedfishUnavailableError,
    has_message,
    split_address,
)
from unit.redfish.conftest import SUCCESS, recorded

SYSTEM = "/redfish/v1/Systems/1"


def test_message_ids_match_by_suffix_whatever_the_registry_version() -> None:
    assert has_message(["Base.1.4.Success"], "Success")
    assert has_message(["iLO.2.25.ResetRequired"], "ResetRequired")
    assert not has_message(["iLO.2.25.ResetRequiredSoon"], "ResetRequired")


def test_503_is_retried_with_bounded_backoff_then_succeeds(transport, make_client) -> None:
    busy = recorded("error_503")
    transport.add(
        "GET", SYSTEM, (503, {"Retry-After": "1"}, busy["body"]), (503, {}, busy["body"]), (200, {}, {"Id": "1"})
    )
    client = make_client()
    assert client.get(SYSTEM) == {"Id": "1"}
    assert client.requests == 3
    assert len(client.slept) == 2 and all(s <= client.backoff_max * 1.2 for s in client.slept)


def test_503_forever_gives_up_after_the_retries(transport, make_client) -> None:
    transport.add("GET", SYSTEM, (503, {}, recorded("error_503")["body"]))
    client = make_client(retries=2)
    with pytest.raises(RedfishUnavailableError) as error:
        client.get(SYSTEM)
    assert client.requests == 3
    assert error.value.has("ServiceTemporarilyUnavailable")


def test_401_is_never_retried_and_says_wrong_credentials(transport, make_client) -> None:
    data = recorded("error_401")
    transport.add("GET", SYSTEM, (401, {}, data["body"]))
    client = make_client()
    with pytest.raises(RedfishAuthError) as error:
        client.get(SYSTEM)
    assert client.requests == 1
    assert "wrong username or password" in str(error.value)
    assert "factory-pass" not in str(error.value)


def test_errors_surface_extended_info(transport, make_client) -> None:
    data = recorded("error_reset_on_while_on")
    transport.add("POST", f"{SYSTEM}/Actions/ComputerSystem.Reset", (400, {}, data["body"]))
    with pytest.raises(RedfishError) as error:
        make_client().post(f"{SYSTEM}/Actions/ComputerSystem.Reset", {"ResetType": "On"})
    assert error.value.has("InvalidOperationForSystemState")
    assert "InvalidOperationForSystemState" in str(error.value) and "Power is on" in str(error.value)


def test_patch_sends_if_match_from_the_last_get(transport, make_client) -> None:
    path = "/redfish/v1/Managers/1/NetworkProtocol"
    transport.add_recorded(path, "network_protocol").add("PATCH", path, SUCCESS)
    client = make_client()
    client.get(path)
    answer = client.patch(path, {"IPMI": {"ProtocolEnabled": False}})
    assert answer.has("Success")
    headers = transport.calls[-1][2]
    assert headers["If-Match"] == recorded("network_protocol")["etag"]


def test_412_refreshes_the_etag_once(transport, make_client) -> None:
    path = "/redfish/v1/Managers/1"
    transport.add("GET", path, (200, {"ETag": 'W/"1"'}, {}), (200, {"ETag": 'W/"2"'}, {}))
    transport.add("PATCH", path, (412, {}, {}), SUCCESS)
    client = make_client()
    client.get(path)
    client.patch(path, {"Oem": {}})
    assert [c[2].get("If-Match") for c in transport.calls if c[0] == "PATCH"] == ['W/"1"', 'W/"2"']


def test_a_post_is_not_retried_once_it_may_have_left(transport, make_client) -> None:
    path = f"{SYSTEM}/Actions/ComputerSystem.Reset"
    transport.add("POST", path, http.client.RemoteDisconnected("gone"), SUCCESS)
    with pytest.raises(RedfishUnavailableError, match="not retried"):
        make_client().post(path, {"ResetType": "On"})
    assert len(transport.calls) == 1


def test_a_post_that_never_left_is_retried(transport, make_client) -> None:
    path = f"{SYSTEM}/Actions/ComputerSystem.Reset"
    transport.add("POST", path, NotSent("refused"), SUCCESS)
    assert make_client().post(path, {"ResetType": "On"}).has("Success")
    assert len(transport.calls) == 2


def test_session_is_deleted_even_when_the_work_fails(transport, make_client) -> None:
    transport.add(
        "POST",
        "/redfish/v1/SessionService/Sessions",
        (201, {"X-Auth-Token": "abc", "Location": "https://127.0.0.1/redfish/v1/SessionService/Sessions/admin1/"}, {}),
    )
    transport.add("GET", SYSTEM, (400, {}, {"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.4.X"}]}}))
    transport.add("DELETE", "/redfish/v1/SessionService/Sessions/admin1", SUCCESS)
    with pytest.raises(RedfishError), make_client(auth="session") as client:
        client.get(SYSTEM)
    methods = [(m, p) for m, p, _h, _b in transport.calls]
    assert methods[-1] == ("DELETE", "/redfish/v1/SessionService/Sessions/admin1/")
    assert transport.calls[1][2]["X-Auth-Token"] == "abc"


def test_validate_certs_false_warns_every_time(transport) -> None:
    warnings: list[str] = []
    for _ in range(2):
        RedfishClient("h", "u", "p", validate_certs=False, warn=warnings.append, transport=transport)
    assert len(warnings) == 2 and "validate_certs=false" in warnings[0]


def test_connection_options_are_defined_once_with_env_fallbacks() -> None:
    assert BMC_ARGUMENT_SPEC["password"]["no_log"] is True
    assert BMC_ARGUMENT_SPEC["password"]["fallback"][1] == ["BM_BMC_PASSWORD"]
    assert BMC_ARGUMENT_SPEC["username"]["fallback"][1] == ["BM_BMC_USERNAME"]
    assert BMC_ARGUMENT_SPEC["validate_certs"]["default"] is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 443)),
        ("10.0.0.1:8443", ("10.0.0.1", 8443)),
        ("[::1]:9", ("::1", 9)),
        ("https://ilo.example:444/", ("ilo.example", 444)),
    ],
)
def test_split_address(text: str, expected: Any) -> None:
    assert split_address(text) == expected


def test_wait_until_ready_sees_the_bmc_go_down_and_come_back(transport, make_client) -> None:
    manager = "/redfish/v1/Managers/1"
    transport.add("GET", manager, (200, {}, {}), NotSent("refused"), NotSent("refused"), (503, {}, {}), (200, {}, {}))
    client = make_client()
    client.wait_until_ready(60, interval=1, settle=0.5)
    assert [c[0] for c in transport.calls] == ["GET"] * 5  # up (not yet reset), down, down, busy, back


def test_wait_until_ready_is_bounded(transport, make_client, monkeypatch) -> None:
    from ansible_collections.bm.lifecycle.plugins.module_utils import _redfish  # noqa: PLC0415

    transport.add("GET", "/redfish/v1/Managers/1", NotSent("refused"))
    clock = {"now": 0.0}
    client = make_client()
    client.sleep = lambda s: clock.__setitem__("now", clock["now"] + s)
    monkeypatch.setattr(_redfish.time, "monotonic", lambda: clock["now"])
    with pytest.raises(RedfishUnavailableError, match="did not come back within 10 s"):
        client.wait_until_ready(10, interval=1, settle=0.5)
    assert len(transport.calls) <= 12
