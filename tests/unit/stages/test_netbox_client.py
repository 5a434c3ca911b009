"""The NetBox client: retries with backoff on 5xx/timeouts/connection errors, none on 4xx, tokens, select fields."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ansible_collections.bm.lifecycle.plugins.module_utils._lifecycle import (
    custom_field,
    parse_time,
    same_value,
    unwrap,
)
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import NetBoxClient, NetBoxError, NetBoxUnreachable
from integration.events.redis_server import free_port


class Script:
    """Answers to give, in order (the last one repeats), and what was asked."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any]] = [(200, {})]
        self.seen: list[dict[str, Any]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.seen.append(
                {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
            )
            status, answer = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def client(url: str, sleeps: list[float], token: str = "nbt_testkey00001.0123456789") -> NetBoxClient:
    return NetBoxClient(url, token, timeout=2, sleep=sleeps.append)


def test_get_with_bearer_token_and_params(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {"count": 1, "results": [{"id": 1}]})]
    sleeps: list[float] = []
    nb = client(url, sleeps)
    assert nb.get("/api/dcim/devices/", name="srv001")["count"] == 1
    assert script.seen[0]["auth"] == "Bearer nbt_testkey00001.0123456789"
    assert script.seen[0]["path"] == "/api/dcim/devices/?name=srv001"
    assert nb.requests == 1
    assert sleeps == []


def test_v1_token_uses_token_keyword(server: tuple[str, Script]) -> None:
    url, script = server
    client(url, [], token="0123456789abcdef0123456789abcdef01234567").get("/api/status/")
    assert script.seen[0]["auth"] == "Token 0123456789abcdef0123456789abcdef01234567"


def test_5xx_is_retried_with_exponential_backoff(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {"detail": "busy"}), (502, {}), (200, {"ok": True})]
    sleeps: list[float] = []
    nb = client(url, sleeps)
    assert nb.get("/api/status/") == {"ok": True}
    assert nb.requests == 3
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 0.625
    assert 1.0 <= sleeps[1] <= 1.25


def test_5xx_three_times_is_unreachable(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {"error": "boom"})]
    nb = client(url, [])
    with pytest.raises(NetBoxUnreachable, match="after 3 tries"):
        nb.get("/api/status/")
    assert nb.requests == 3


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_4xx_is_not_retried(server: tuple[str, Script], status: int) -> None:
    url, script = server
    script.answers = [(status, {"detail": "no"})]
    sleeps: list[float] = []
    nb = client(url, sleeps)
    with pytest.raises(NetBoxError) as caught:
        nb.patch("/api/dcim/devices/1/", {"custom_fields": {"lifecycle_state": "x"}})
    assert caught.value.status == status
    assert not isinstance(caught.value, NetBoxUnreachable)
    assert nb.requests == 1
    assert sleeps == []


def test_post_is_not_retried_on_500_but_on_503(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {})]
    nb = client(url, [])
    with pytest.raises(NetBoxUnreachable):
        nb.post("/api/extras/journal-entries/", {"comments": "x"})
    assert nb.requests == 1
    script.answers = [(503, {}), (201, {"id": 7})]
    assert nb.post("/api/extras/journal-entries/", {"comments": "x"}) == {"id": 7}


def test_connection_refused_is_retried_then_unreachable() -> None:
    sleeps: list[float] = []
    nb = client(f"http://127.0.0.1:{free_port()}", sleeps)
    with pytest.raises(NetBoxUnreachable, match="did not answer"):
        nb.get("/api/status/")
    assert len(sleeps) == 2
    assert nb.requests == 0  # nothing was sent


def test_list_follows_pages(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [
        (200, {"count": 3, "next": "x", "results": [{"id": 1}, {"id": 2}]}),
        (200, {"count": 3, "next": None, "results": [{"id": 3}]}),
    ]
    assert [r["id"] for r in client(url, []).list("/api/ipam/ip-addresses/", interface_id=5)] == [1, 2, 3]
    assert "offset=2" in script.seen[1]["path"]


@pytest.mark.parametrize(
    ("url", "token", "message"),
    [("", "t", "URL missing"), ("http://x", "", "token missing"), ("ftp://x", "t", "http")],
)
def test_bad_settings(url: str, token: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetBoxClient(url, token)


def test_select_fields_are_unwrapped() -> None:
    assert unwrap({"value": "staged", "label": "Staged"}) == "staged"
    assert unwrap("staged") == "staged"
    assert unwrap({"id": 3}) == {"id": 3}
    device = {"custom_fields": {"lifecycle_state": {"value": "discovery", "label": "discovery"}, "hardened_at": None}}
    assert custom_field(device, "lifecycle_state") == "discovery"
    assert custom_field(device, "hardened_at") is None
    assert custom_field({}, "lifecycle_state") is None


def test_same_value_compares_instants_and_empties() -> None:
    assert same_value("2026-11-25T05:00:00Z", "2026-11-25T05:00:00+00:00")
    assert not same_value("2026-11-25T05:00:00Z", "2026-11-25T05:00:01Z")
    assert same_value(None, "")
    assert not same_value(None, "2026-11-25T05:00:00Z")
    assert same_value({"value": "staged", "label": "staged"}, "staged")
    assert parse_time("nonsense") is None
