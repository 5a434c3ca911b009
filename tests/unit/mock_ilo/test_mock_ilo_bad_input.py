"""Bad input gets iLO's 400 envelopes, never a 500 or a crash."""

from __future__ import annotations

import json
import socket
import ssl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bm_mock_ilo.payload import MAX_BODY
from bm_mock_ilo.testing import FleetHandle, RedfishClient, message_ids

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
WRITABLE = [
    "/redfish/v1/Systems/1",
    "/redfish/v1/Chassis/1",
    "/redfish/v1/Managers/1",
    "/redfish/v1/Managers/1/NetworkProtocol",
    "/redfish/v1/Managers/1/SnmpService",
    "/redfish/v1/AccountService",
    "/redfish/v1/AccountService/Accounts/1",
    "/redfish/v1/SessionService",
    "/redfish/v1/Managers/1/VirtualMedia/2",
]
CREATE = [
    "/redfish/v1/AccountService/Accounts",
    "/redfish/v1/SessionService/Sessions",
    "/redfish/v1/Managers/1/SnmpService/SNMPUsers",
    "/redfish/v1/Managers/1/SnmpService/SNMPAlertDestinations",
    "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
    "/redfish/v1/Managers/1/Actions/Manager.Reset",
    "/redfish/v1/Managers/1/VirtualMedia/2/Actions/VirtualMedia.InsertMedia",
]


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b"{" * 5000 + b"}" * 5000, b"null"])
@pytest.mark.parametrize("path", WRITABLE[:3] + CREATE[:1])
def test_malformed_json(client: RedfishClient, path: str, raw: bytes) -> None:
    method = "POST" if path in CREATE else "PATCH"
    response = client.request(method, path, data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert message_ids(response) == ["Base.1.4.MalformedJSON"]


def test_empty_patch_is_malformed(client: RedfishClient) -> None:
    assert message_ids(client.request("PATCH", "/redfish/v1/Systems/1", data=b"")) == ["Base.1.4.MalformedJSON"]


@pytest.mark.parametrize(
    ("body", "message", "args"),
    [
        ({"IndicatorLED": 1}, "Base.1.4.PropertyValueTypeError", ["1", "IndicatorLED"]),
        ({"IndicatorLED": None}, "Base.1.4.PropertyValueTypeError", ["null", "IndicatorLED"]),
        ({"Boot": "Pxe"}, "Base.1.4.PropertyValueTypeError", ['"Pxe"', "Boot"]),
        (
            {"Boot": {"BootSourceOverrideEnabled": True}},
            "Base.1.4.PropertyValueTypeError",
            ["true", "Boot/BootSourceOverrideEnabled"],
        ),
        ({"PowerState": "On"}, "iLO.2.15.PropertyNotWritableOrUnknown", ["PowerState"]),
        ({"Bogus": 1}, "iLO.2.15.PropertyNotWritableOrUnknown", ["Bogus"]),
    ],
)
def test_wrong_types_and_unknown_properties(
    client: RedfishClient, body: dict[str, object], message: str, args: list[str]
) -> None:
    response = client.patch("/redfish/v1/Systems/1", body)
    assert response.status_code == 400
    assert response.json()["error"]["@Message.ExtendedInfo"] == [{"MessageId": message, "MessageArgs": args}]


def test_every_problem_is_reported_and_nothing_applied(client: RedfishClient) -> None:
    body = {"IPMI": {"Port": "623", "ProtocolEnabled": False}, "SSH": {"Port": 70000}, "Telnet": {}}
    response = client.patch("/redfish/v1/Managers/1/NetworkProtocol", body)
    assert message_ids(response) == [
        "Base.1.4.PropertyValueTypeError",
        "iLO.2.15.PropertyValueBadParam",
        "iLO.2.15.PropertyNotWritableOrUnknown",
    ]
    assert client.get("/redfish/v1/Managers/1/NetworkProtocol").json()["IPMI"]["ProtocolEnabled"] is False


def test_bool_is_not_an_integer(client: RedfishClient) -> None:
    response = client.patch("/redfish/v1/Managers/1/NetworkProtocol", {"SNMP": {"Port": True}})
    assert message_ids(response) == ["Base.1.4.PropertyValueTypeError"]


def test_huge_body_is_refused_without_reading_it(client: RedfishClient) -> None:
    huge = json.dumps({"AssetTag": "x" * (MAX_BODY + 10)})
    response = client.request("PATCH", "/redfish/v1/Systems/1", data=huge)
    assert response.status_code == 400
    assert message_ids(response) == ["Base.1.4.MalformedJSON"]
    chunked = client.request("PATCH", "/redfish/v1/Systems/1", data=(b"x" * 4096 for _ in range(40)))
    assert chunked.status_code == 400
    assert client.get("/redfish/v1/Systems/1").status_code == 200


def test_garbage_on_the_wire_does_not_kill_the_bmc(fleet: FleetHandle, client: RedfishClient) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for garbage in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n"):
        with (
            socket.create_connection((fleet[0].address, fleet[0].port), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.sendall(garbage)
            tls.recv(4096)
    with socket.create_connection((fleet[0].address, fleet[0].port), timeout=5) as raw:
        raw.sendall(b"not TLS at all\r\n\r\n")
        raw.recv(4096)
    assert client.get("/redfish/v1/Systems/1").status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=12,
)
bodies = st.dictionaries(
    st.sampled_from(
        [
            "Boot",
            "IndicatorLED",
            "Oem",
            "IPMI",
            "SNMP",
            "Password",
            "UserName",
            "RoleId",
            "ReadCommunities",
            "Image",
            "ResetType",
            "SecurityName",
            "AuthPassphrase",
            "x",
        ]
    ),
    json_values,
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(WRITABLE + CREATE), body=bodies)
def test_random_bodies_never_500(client: RedfishClient, path: str, body: dict[str, object]) -> None:
    method = "POST" if path in CREATE else "PATCH"
    response = client.request(method, path, json=body)
    assert response.status_code < 500 or response.status_code == 503, response.text
    assert "error" in response.json() or response.status_code in (200, 201)
