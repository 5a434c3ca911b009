"""Envelope v1 (module_utils/_envelope.py): schema, validation reasons, construction, and a property test."""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.bm.lifecycle.plugins.module_utils import _envelope as env


def valid(**overrides: Any) -> dict[str, Any]:
    e = env.new_event("dhcp_lease", {"ip": "192.0.2.10", "mac": "94:40:c9:5e:07:b0"}, source="test")
    e.update(overrides)
    return e


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(env.ENVELOPE_SCHEMA)


def test_new_event_is_valid_and_round_trips() -> None:
    e = valid()
    assert env.decode(env.encode(e)) == e
    assert e["version"] == 1 and e["causation_id"] is None and e["device"] is None
    uuid.UUID(e["event_id"])


def test_follow_up_is_deterministic_and_inherits_device() -> None:
    cause = valid(device={"id": 7, "name": "srv-7"})
    a = env.new_event("device_discovered", {"x": 1}, source="s", cause=cause)
    b = env.new_event("device_discovered", {"x": 2}, source="s", cause=cause)
    c = env.new_event("device_discovered", {}, source="s", cause=cause, dedupe_key="nic2")
    assert a["event_id"] == b["event_id"] != c["event_id"]
    assert a["causation_id"] == cause["event_id"]
    assert a["device"] == {"id": 7, "name": "srv-7"}
    assert env.new_event("stage_failed", source="s", cause=cause["event_id"])["device"] is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.update(version=2), "version: must be 1"),
        (lambda e: e.update(version=True), "version: must be 1"),
        (lambda e: e.pop("event_id"), "missing field 'event_id'"),
        (lambda e: e.update(event_id="not-a-uuid"), "event_id:"),
        (lambda e: e.update(event_type="DHCP Lease"), "event_type:"),
        (lambda e: e.update(event_type="dhcp_lease\n"), "event_type:"),
        (lambda e: e.update(timestamp="yesterday"), "timestamp:"),
        (lambda e: e.update(timestamp="2026-13-45T99:00:00Z"), "not a real date"),
        (lambda e: e.update(source=""), "source: shorter"),
        (lambda e: e.update(data=[]), "data: expected object, got array"),
        (lambda e: e.update(device={"id": "7", "name": "x"}), "device.id: expected integer or null, got string"),
        (lambda e: e.update(device={"id": 0, "name": "x"}), "device.id: 0 is less than 1"),
        (lambda e: e.update(device={"id": 1}), "device: missing field 'name'"),
        (lambda e: e.update(extra=1), "unexpected field"),
        (
            lambda e: e.update(data={"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
            "nested deeper",
        ),
    ],
)
def test_invalid_envelopes_say_why(mutate: Any, reason: str) -> None:
    e = valid()
    mutate(e)
    with pytest.raises(env.EnvelopeError, match=reason.replace("(", r"\(")):
        env.validate(e)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "no 'envelope' field"),
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "expected object, got array"),
        (b'{"version": NaN}', "not JSON"),
        (b"x" * (1024 * 1024), "more than 65536"),
        (b"[" * 60000, "nested too deeply|not JSON"),
    ],
)
def test_decode_rejects(raw: bytes | None, reason: str) -> None:
    with pytest.raises(env.EnvelopeError, match=reason):
        env.decode(raw)


def test_encode_rejects_oversize_and_unserialisable() -> None:
    with pytest.raises(env.EnvelopeError, match="more than"):
        env.encode(valid(data={"blob": "x" * env.MAX_ENVELOPE_BYTES}))
    with pytest.raises(env.EnvelopeError, match="not JSON-serialisable"):
        env.encode(valid(data={"when": object()}))


def test_stream_for() -> None:
    assert env.stream_for("dhcp_lease") == "bm:events:dhcp_lease"
    with pytest.raises(env.EnvelopeError):
        env.stream_for("../x")


# --- property-based: 10,000 generated envelopes, no crash, agreement with jsonschema -------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=6,
)
FIELDS = list(env.ENVELOPE_SCHEMA["required"])


@st.composite
def envelopes(draw: st.DrawFn) -> object:
    kind = draw(st.integers(0, 3))
    if kind == 0:  # anything JSON
        return draw(JSON)
    e: dict[str, Any] = valid(
        device=draw(
            st.none()
            | st.fixed_dictionaries(
                {"id": st.none() | st.integers(-2, 10**6), "name": st.none() | st.text(max_size=70)}
            )
        ),
        causation_id=draw(st.none() | st.uuids().map(str)),
        data=draw(st.dictionaries(st.text(max_size=8), JSON, max_size=5)),
    )
    if kind >= 2:  # mutate a few fields
        for field in draw(st.lists(st.sampled_from([*FIELDS, "surplus"]), min_size=1, max_size=3)):
            if draw(st.booleans()):
                e.pop(field, None)
            else:
                e[field] = draw(JSON)
    return e


VALIDATOR = jsonschema.Draft202012Validator(env.ENVELOPE_SCHEMA)


def check_candidate(candidate: object) -> None:
    ours = env.schema_errors(candidate)
    assert (not ours) == VALIDATOR.is_valid(candidate), (ours, candidate)
    assert all(isinstance(line, str) and ": " in line for line in ours), ours
    try:
        env.validate(candidate)
    except env.EnvelopeError as exc:
        assert str(exc)
    else:
        assert not ours
    try:
        raw = json.dumps(candidate)
    except ValueError:
        return
    try:
        assert env.decode(raw.encode()) == candidate
    except env.EnvelopeError as exc:
        assert str(exc)


@settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(envelopes())
def test_generated_envelopes_shrinkable(candidate: object) -> None:
    """Structured generation (hypothesis shrinks a failure to a small example)."""
    check_candidate(candidate)


SCALARS: list[object] = [None, True, False, 0, 1, -1, 2, 1.0, 1.5, "", "x", "1", "dhcp_lease", [], {}, [1], {"a": 1}]


def mutate(rng: random.Random) -> object:
    """A valid envelope with 0-4 random field removals, replacements (scalars, nested junk) or additions."""
    e: dict[str, Any] = valid(
        device=rng.choice([None, {"id": rng.randint(-1, 9), "name": rng.choice(["s", "", None, 7])}, {"id": 1}]),
        causation_id=rng.choice([None, str(uuid.UUID(int=rng.getrandbits(128))), "nope"]),
    )
    for _ in range(rng.randint(0, 4)):
        field = rng.choice([*FIELDS, "surplus", "device", "data"])
        action = rng.randint(0, 3)
        if action == 0:
            e.pop(field, None)
        elif action == 1:
            e[field] = rng.choice(SCALARS)
        elif action == 2:
            e[field] = {rng.choice("abc"): rng.choice(SCALARS)} if rng.random() < 0.5 else [rng.choice(SCALARS)] * 3
        else:
            e[field] = "".join(rng.choice("0123456789abcdef-:TZ.\n ") for _ in range(rng.randint(0, 40)))
    return e


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.integers(min_value=0, max_value=2**63))
def test_ten_thousand_generated_envelopes(seed: int) -> None:
    """10,000 envelopes, hypothesis-seeded and cheaply mutated: no crash, same verdict as jsonschema."""
    check_candidate(mutate(random.Random(seed)))


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_decode_never_crashes_on_bytes(raw: bytes) -> None:
    with contextlib.suppress(env.EnvelopeError):
        env.decode(raw)
