"""The mock against what real iLO 5 and iLO 6 answer (facts in tests/fixtures/mock_ilo), and as clients walk it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from bm_mock_ilo import Settings
from bm_mock_ilo.registries import BASE_MESSAGES, ILO_MESSAGES
from bm_mock_ilo.testing import FleetHandle, RedfishClient, message_ids, start_fleet
from helpers import ROOT

FACTS = sorted((ROOT / "tests" / "fixtures" / "mock_ilo").glob("*.json"))
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetHandle]:
    """An iLO 5 (BMC 0) and an iLO 6 (BMC 1), host on."""
    settings = [Settings(post_seconds=0.1), Settings(model="ilo6", post_seconds=0.1)]
    with start_fleet(2, settings=settings, state_dir=tmp_path_factory.mktemp("cert")) as fleet:
        for index in range(2):
            fleet.set_state(index, PowerState="On")
        yield fleet


def at(body: Any, path: str) -> Any:
    """The value at a ``/``-separated path (list indexes as numbers); KeyError if absent."""
    value = body
    for part in path.split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def client_for(fleet: FleetHandle, model: str) -> RedfishClient:
    return RedfishClient.admin(fleet[0 if model == "ilo5" else 1])


@pytest.mark.parametrize("fact_file", FACTS, ids=[f.stem for f in FACTS])
def test_resource_matches_public_facts(mixed: FleetHandle, fact_file: Path) -> None:
    fact = json.loads(fact_file.read_text())
    response = client_for(mixed, fact["model"]).get(fact["resource"])
    assert response.status_code == fact.get("status", 200), response.text
    body = response.json()
    for path, value in fact["expect"].items():
        assert at(body, path) == value, path
    for path, pattern in fact["patterns"].items():
        assert re.search(pattern, str(at(body, path))), (path, at(body, path))
    for path in fact["links"]:
        value = at(body, path)
        uri = value["@odata.id"] if isinstance(value, dict) else value
        assert uri.endswith("/"), (path, uri)
    for name, value in fact.get("headers", {}).items():
        assert response.headers[name] == value, name
    for name, pattern in fact.get("header_patterns", {}).items():
        assert re.search(pattern, response.headers[name]), (name, response.headers[name])


def walk(client: RedfishClient, start: str = "/redfish/v1/") -> dict[str, dict[str, Any]]:
    """Every resource reachable by ``@odata.id`` links (fragments dropped), by the URI as linked."""
    seen: dict[str, dict[str, Any]] = {}
    queue = [start]
    while queue:
        uri = queue.pop()
        if uri in seen:
            continue
        response = client.get(uri)
        assert response.status_code == 200, (uri, response.text)
        seen[uri] = response.json()
        queue.extend(link for link in links(seen[uri]) if link not in seen)
    return seen


def links(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("@odata.id", "target") and isinstance(item, str):
                if key == "@odata.id" and "#" not in item:
                    yield item
            else:
                yield from links(item)
    elif isinstance(value, list):
        for item in value:
            yield from links(item)


def every_link(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("@odata.id", "target", "DataSourceUri") and isinstance(item, str):
                yield item
            else:
                yield from every_link(item)
    elif isinstance(value, list):
        for item in value:
            yield from every_link(item)


@pytest.mark.parametrize("model", ["ilo5", "ilo6"])
def test_every_link_ends_with_a_slash_and_members_resolve_by_urljoin(mixed: FleetHandle, model: str) -> None:
    client = client_for(mixed, model)
    resources = walk(client)
    assert len(resources) > 40
    for uri, body in resources.items():
        assert uri.endswith("/"), uri
        for link in every_link(body):
            assert link.split("#")[0].endswith("/"), (uri, link)
        for member in body.get("Members", []):
            # what clients do: the member's last segment resolved against the collection's own link
            relative = member["@odata.id"].rstrip("/").rsplit("/", 1)[-1]
            assert urljoin(body["@odata.id"], relative) + "/" == member["@odata.id"], (uri, member)


@pytest.mark.parametrize(
    "path", ["/redfish/v1/Systems", "/redfish/v1/Systems/", "/redfish/v1/systems/1/", "/redfish/v1/Systems/1"]
)
def test_both_forms_are_accepted_and_answered_alike(mixed: FleetHandle, path: str) -> None:
    body = client_for(mixed, "ilo5").get(path).json()
    assert body["@odata.id"].endswith("/")
    assert body["@odata.id"].lower() == path.lower().rstrip("/") + "/"


@pytest.mark.parametrize("collection", ["JsonSchemas", "Registries"])
def test_expand_dot_inlines_members_as_ilorest_reads_them(mixed: FleetHandle, collection: str) -> None:
    client = client_for(mixed, "ilo5")
    plain = client.get(f"/redfish/v1/{collection}/").json()
    expanded = client.get(f"/redfish/v1/{collection}/?$expand=.").json()
    assert [m["@odata.id"] for m in expanded["Members"]] == [m["@odata.id"] for m in plain["Members"]]
    assert all(set(m) > {"@odata.id"} for m in expanded["Members"])
    for member in expanded["Members"]:
        assert member["Location"][0]["Uri"].endswith(".json/")
        assert member["Languages"] == ["en"]
    if collection == "JsonSchemas":
        schemas = {m["Id"]: m["Schema"] for m in expanded["Members"]}
        assert schemas["ComputerSystem"] == "#ComputerSystem.v1_10_0.ComputerSystem"
        assert schemas["HpeiLO"] == "#HpeiLO.v2_7_1.HpeiLO"
    else:
        assert {m["Id"]: m["Registry"] for m in expanded["Members"]} == {"Base": "Base.1.4", "iLO": "iLO.2.15"}


def test_registry_documents_carry_every_message_the_mock_answers(mixed: FleetHandle) -> None:
    client = client_for(mixed, "ilo5")
    used = set()
    for source in (ROOT / "src" / "bm_mock_ilo").glob("*.py"):
        used |= set(re.findall(r"\{(BASE|ILO)\}\.([A-Za-z]+)", source.read_text()))
    for prefix, registry in (("BASE", BASE_MESSAGES), ("ILO", ILO_MESSAGES)):
        assert {name for kind, name in used if kind == prefix} <= set(registry), prefix
    for name, prefix in (("Base", "Base.1.4"), ("iLO", "iLO.2.15")):
        location = client.get(f"/redfish/v1/Registries/{name}/").json()["Location"][0]["Uri"]
        document = client.get(location).json()
        assert document["RegistryPrefix"] == name
        assert f"{document['RegistryPrefix']}.{document['RegistryVersion']}".startswith(prefix)
        for message in document["Messages"].values():
            assert message["NumberOfArgs"] == message["Message"].count("%")


def test_session_login_answers_ilo_headers(mixed: FleetHandle) -> None:
    bmc = mixed[0]
    anonymous = RedfishClient(bmc)
    login = anonymous.post("/redfish/v1/SessionService/Sessions/", {"UserName": bmc.username, "Password": bmc.password})
    assert login.status_code == 201
    path = login.headers["Location"].removeprefix(bmc.base_url)
    assert path.endswith("/")
    assert login.headers["Link"] == f"<{path}>; rel=self"
    assert re.fullmatch(r"[0-9a-f]{32}", login.headers["X-Auth-Token"])
    assert anonymous.request("DELETE", path, headers={"X-Auth-Token": login.headers["X-Auth-Token"]}).ok


def test_errors_carry_no_link_header_and_ilo_envelope(mixed: FleetHandle) -> None:
    response = client_for(mixed, "ilo5").get("/redfish/v1/Nowhere")
    assert response.status_code == 404
    assert "Link" not in response.headers
    assert message_ids(response) == ["Base.1.4.ResourceMissingAtURI"]
