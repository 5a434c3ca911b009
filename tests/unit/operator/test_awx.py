"""AWX as code: awx/bm-lifecycle.yml (awxkit import format) and the rulebook lifecycle_awx.yml against lifecycle.yml."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helpers import COLLECTION, ROOT, VENV_BIN

ASSETS = ROOT / "awx" / "bm-lifecycle.yml"
RULEBOOKS = COLLECTION / "extensions" / "eda" / "rulebooks"
SCHEMA = next((VENV_BIN.parent / "lib").glob("python3*/site-packages/ansible_rulebook/schema/ruleset_schema.json"))


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def assets() -> dict[str, Any]:
    return load(ASSETS)


def by_key(assets: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every object of the file by its natural key (as JSON), the way awx import resolves references."""
    return {
        json.dumps(obj["natural_key"], sort_keys=True): obj
        for kind in ("credential_types", "execution_environments", "projects", "inventory", "job_templates")
        for obj in assets[kind]
    }


def test_the_file_has_what_awx_import_needs(assets: dict[str, Any]) -> None:
    assert {"credential_types", "projects", "job_templates"} <= set(assets)
    assert not set(assets) - {"credential_types", "execution_environments", "projects", "inventory", "job_templates"}
    types = {"credential_types": "credential_type", "execution_environments": "execution_environment",
             "projects": "project", "inventory": "inventory", "job_templates": "job_template"}  # fmt: skip
    for kind, objects in assets.items():
        for obj in objects:
            assert obj["natural_key"]["type"] == types[kind], obj["name"]
            assert obj["natural_key"]["name"] == obj["name"], obj["name"]


def test_credential_types_inject_only_their_inputs_and_mark_secrets(assets: dict[str, Any]) -> None:
    names = {t["name"] for t in assets["credential_types"]}
    assert names == {"bm-lifecycle NetBox", "bm-lifecycle BMC", "bm-lifecycle Redis"}
    for ctype in assets["credential_types"]:
        assert ctype["kind"] == "cloud"
        fields = {f["id"]: f for f in ctype["inputs"]["fields"]}
        assert set(ctype["inputs"]["required"]) <= set(fields)
        for fid, field in fields.items():
            if re.search(r"token|password", fid):
                assert field.get("secret") is True, f"{ctype['name']}.{fid} must be secret"
        files = {k.split(".", 1)[1] for k in ctype["injectors"].get("file", {})}
        used: set[str] = set()
        for section in ("env", "extra_vars", "file"):
            for value in ctype["injectors"].get(section, {}).values():
                for name in re.findall(r"{{\s*([\w.]+)\s*}}", value):
                    if name.startswith("tower.filename."):
                        assert name.removeprefix("tower.filename.") in files, name
                    else:
                        assert name in fields, f"{ctype['name']} injects unknown input {name}"
                        used.add(name)
        assert used == set(fields), f"{ctype['name']}: inputs never injected: {set(fields) - used}"
    netbox = next(t for t in assets["credential_types"] if t["name"] == "bm-lifecycle NetBox")
    assert set(netbox["injectors"]["env"]) == {"NETBOX_API", "NETBOX_TOKEN"}


def test_references_resolve_and_every_job_template_names_a_playbook(assets: dict[str, Any]) -> None:
    known = by_key(assets)
    for jt in assets["job_templates"]:
        for ref in ("project", "inventory", "execution_environment"):
            assert json.dumps(jt[ref], sort_keys=True) in known, f"{jt['name']}: {ref} not in the file"
        playbook = ROOT / jt["playbook"]
        assert playbook.is_file(), f"{jt['name']}: {jt['playbook']} does not exist"
        assert not Path(jt["playbook"]).is_absolute()
        plays = load(playbook)
        assert isinstance(plays, list) and all("hosts" in p for p in plays), jt["playbook"]
        assert jt["ask_variables_on_launch"] is True
    project = assets["projects"][0]
    assert json.dumps(project["default_environment"], sort_keys=True) in known


def rulebook(name: str) -> list[dict[str, Any]]:
    data = load(RULEBOOKS / name)
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    return data


def bus_event_types(ruleset: dict[str, Any]) -> list[str]:
    source = next(s for s in ruleset["sources"] if "bm.lifecycle.redis_streams" in s)
    return source["bm.lifecycle.redis_streams"]["event_types"]


def test_the_awx_rulebook_has_the_rules_of_the_service_rulebook(assets: dict[str, Any]) -> None:
    local, awx = rulebook("lifecycle.yml")[0], rulebook("lifecycle_awx.yml")[0]
    assert awx["sources"] == local["sources"]
    awx_conditions = [r["condition"] for r in awx["rules"]]
    for event_type in bus_event_types(local):
        assert f'event.event_type == "{event_type}"' in awx_conditions, f"no AWX rule for {event_type}"
    assert sorted(awx_conditions) == sorted(r["condition"] for r in local["rules"])

    templates = {jt["name"]: jt for jt in assets["job_templates"]}
    awx_rules = {r["condition"]: r["action"]["run_job_template"] for r in awx["rules"]}
    for rule in local["rules"]:
        played = rule["action"]["run_playbook"]
        launched = awx_rules[rule["condition"]]
        assert launched["organization"] == "{{ bm_awx_organization }}"
        template = templates[launched["name"]]
        assert Path(template["playbook"]).stem == played["name"].removeprefix("bm.lifecycle.")
        assert launched.get("job_args", {}).get("extra_vars") == played.get("extra_vars")
