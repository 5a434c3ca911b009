"""NetBox's schema (created by bm.lifecycle.bootstrap_netbox from vars/lifecycle_schema.yml) is the state machine's."""

from __future__ import annotations

from pathlib import Path

import yaml

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import CHANGED_AT, STATES, TRANSITIONS

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "collections/ansible_collections/bm/lifecycle/playbooks/vars/lifecycle_schema.yml"


def test_the_custom_field_choices_are_the_states_of_the_state_machine() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    assert tuple(schema["bm_lifecycle_states"]) == STATES


def test_every_timestamp_a_transition_stamps_is_a_datetime_field() -> None:
    fields = {f["name"] for f in yaml.safe_load(SCHEMA.read_text())["bm_datetime_fields"]}
    stamped = {t.stamp for t in TRANSITIONS.values() if t.stamp} | {CHANGED_AT}
    assert stamped <= fields, stamped - fields


def test_the_architecture_document_lists_every_transition() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for name, t in TRANSITIONS.items():
        assert f"| `{name}` |" in text, name
        assert f"| `{t.target}` |" in text, (name, t.target)
