"""The NetBox client against a real HTTP server on loopback: retries with backoff on 5xx/timeouts/connection errors,
none on 4xx, a POST never sent twice, per-request timeouts, tokens, the request counter, list and bulk helpers; select
fields."""

from __future__ import annotations

import json
import threading
import time
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
from ansible_collections.bm.lifecycle.plugins.module_utils._netbox import (
    NetBoxClient,
    NetBoxError,
    NetBoxUnreachable,
    bulk_write,
    read_devices,
)
from integration.events.redis_server import free_port

DROP = -1  # a status that closes the connection after reading the request, without answering


class Script:
    """Answers to give, in order (the last one repeats), how long to wait before each, and what was asked."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any]] = [(200, {})]
        self.delay = 0.0
        self.seen: list[dict[str, Any]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "auth": self.headers.get("Authorization"),
                    "agent": self.headers.get("User-Agent"),
                    "type": self.headers.get("Content-Type"),
                    "body": body,
                }
            )
            status, answer = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            if script.delay:
                time.sleep(script.delay)
            if status == DROP:
                self.close_connection = True
                return
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


def test_user_agent_is_the_callers_name_and_a_body_is_json(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(201, {"id": 1})]
    nb = NetBoxClient(url, "nbt_testkey00001.0123456789", user_agent="bm.lifecycle.stage_batch")
    assert nb.post("/api/extras/journal-entries/", {"comments": "x"}) == {"id": 1}
    assert script.seen[0]["agent"] == "bm.lifecycle.stage_batch"
    assert script.seen[0]["type"] == "application/json"
    assert json.loads(script.seen[0]["body"]) == {"comments": "x"}


def test_a_v2_token_is_bearer_on_list_and_bulk_requests_too(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {"count": 0, "next": None, "results": []}), (201, [{"id": 1}])]
    nb = client(url, [], token="nbt_abc")  # the prefix decides, as documented for netbox_token
    nb.list("/api/dcim/devices/")
    bulk_write(nb, "POST", "/api/extras/journal-entries/", [{"comments": "x"}])
    assert [seen["auth"] for seen in script.seen] == ["Bearer nbt_abc", "Bearer nbt_abc"]


def test_4xx_is_a_netbox_error_with_status_and_decoded_body(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(400, {"name": ["This field is required."]})]
    nb = client(url, [])
    with pytest.raises(NetBoxError, match=r"NetBox POST /api/dcim/interfaces/: HTTP 400: .*required") as caught:
        nb.post("/api/dcim/interfaces/", {"device": 1})
    assert caught.value.status == 400
    assert caught.value.body == {"name": ["This field is required."]}
    assert not caught.value.retryable


def test_get_whose_connection_broke_after_sending_is_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(DROP, None), (200, {"ok": True})]
    sleeps: list[float] = []
    nb = client(url, sleeps)
    assert nb.get("/api/status/") == {"ok": True}
    assert nb.requests == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_write_whose_connection_broke_after_sending_is_not_sent_again_unless_idempotent(
    server: tuple[str, Script], method: str
) -> None:
    url, script = server
    script.answers = [(DROP, None), (200, {"id": 1})]
    nb = client(url, [])
    if method == "POST":
        with pytest.raises(NetBoxUnreachable, match="may or may not have been applied") as caught:
            nb.post("/api/extras/journal-entries/", {"comments": "x"})
        assert caught.value.retryable
        assert nb.requests == 1
        assert [seen["method"] for seen in script.seen] == ["POST"]
    else:  # PATCH is idempotent: sent again
        assert nb.patch("/api/dcim/devices/1/", {"serial": "x"}) == {"id": 1}
        assert nb.requests == 2


def test_timeout_is_per_request(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {"id": 1})] * 4 + [(200, [{"id": 1}])]
    script.delay = 0.6
    nb = NetBoxClient(url, "nbt_testkey00001.0123456789", timeout=0.2, tries=2, sleep=lambda _s: None)
    with pytest.raises(NetBoxUnreachable, match=r"did not answer GET /api/status/ after 2 tries \(.*timed out"):
        nb.get("/api/status/")
    assert nb.requests == 2  # a GET that timed out is sent again
    with pytest.raises(NetBoxUnreachable, match="may or may not have been applied"):
        nb.post("/api/extras/journal-entries/", {"comments": "x"})  # the client's 0.2 s
    assert nb.post("/api/extras/journal-entries/", {"comments": "x"}, timeout=5) == {"id": 1}
    assert nb.patch("/api/dcim/devices/", [{"id": 1}], timeout=5) == [{"id": 1}]  # a bulk write


def test_bulk_write_waits_longer_than_one_request(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(201, [{"id": 1}, {"id": 2}])]
    script.delay = 0.6
    nb = NetBoxClient(url, "nbt_testkey00001.0123456789", timeout=0.3, tries=1)
    assert bulk_write(nb, "POST", "/api/extras/journal-entries/", [{"comments": "a"}, {"comments": "b"}]) == [
        {"id": 1},
        {"id": 2},
    ]  # 0.3 s + 2 s per row
    assert nb.requests == 1


def test_bulk_write_sends_a_refused_chunk_again_row_by_row(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [
        (400, [{}, {"name": ["exists"]}]),
        (201, {"id": 1, "name": "eth0"}),
        (400, {"name": ["exists"]}),
    ]
    nb = client(url, [])
    rows = [{"device": 1, "name": "eth0"}, {"device": 1, "name": "eth1"}]
    first, second = bulk_write(nb, "POST", "/api/dcim/interfaces/", rows)
    assert first == {"id": 1, "name": "eth0"}
    assert isinstance(second, NetBoxError) and second.status == 400
    assert [json.loads(seen["body"]) for seen in script.seen] == [rows, rows[0], rows[1]]
    assert nb.requests == 3


def test_bulk_patch_answers_by_id_and_an_outage_raises(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, [{"id": 2, "serial": "b"}, {"id": 1, "serial": "a"}])]
    nb = client(url, [])
    rows = [{"id": 1, "serial": "a"}, {"id": 2, "serial": "b"}]
    assert bulk_write(nb, "PATCH", "/api/dcim/devices/", rows) == [{"id": 1, "serial": "a"}, {"id": 2, "serial": "b"}]
    assert script.seen[0]["method"] == "PATCH" and script.seen[0]["path"] == "/api/dcim/devices/"
    script.answers = [(503, {})]
    with pytest.raises(NetBoxUnreachable, match="after 3 tries"):
        bulk_write(nb, "PATCH", "/api/dcim/devices/", rows)


def test_read_devices_is_one_list_get_with_repeated_ids(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {"count": 2, "next": None, "results": [{"id": 3, "name": "a"}, {"id": 5, "name": "b"}]})]
    nb = client(url, [])
    assert read_devices(nb, [3, 5, 3]) == {3: {"id": 3, "name": "a"}, 5: {"id": 5, "name": "b"}}
    [seen] = script.seen
    assert seen["path"].startswith("/api/dcim/devices/?")
    assert "id=3&id=5" in seen["path"] and "limit=2" in seen["path"]
    assert nb.requests == 1


def test_list_follows_three_pages_with_the_filter_on_each(server: tuple[str, Script]) -> None:
    url, script = server
    page = "/api/dcim/interfaces/?device_id=7&limit=2&offset={}"
    script.answers = [
        (200, {"count": 5, "next": url + page.format(2), "results": [{"id": 1}, {"id": 2}]}),
        (200, {"count": 5, "next": url + page.format(4), "results": [{"id": 3}, {"id": 4}]}),
        (200, {"count": 5, "next": None, "results": [{"id": 5}]}),
    ]
    nb = client(url, [])
    assert [r["id"] for r in nb.list("/api/dcim/interfaces/", device_id=7, limit=2)] == [1, 2, 3, 4, 5]
    assert nb.requests == 3
    assert all("device_id=7" in seen["path"] for seen in script.seen)
    assert "offset=4" in script.seen[2]["path"]


def test_next_links_naming_another_host_come_back_to_ours(server: tuple[str, Script]) -> None:
    url, script = server
    proxied = "https://netbox-behind-proxy.invalid/netbox/api/dcim/interfaces/?device_id=7&limit=2&offset={}"
    script.answers = [
        (200, {"count": 5, "next": proxied.format(2), "results": [{"id": 1}, {"id": 2}]}),
        (200, {"count": 5, "next": proxied.format(4), "results": [{"id": 3}, {"id": 4}]}),
        (200, {"count": 5, "next": None, "results": [{"id": 5}]}),
    ]
    nb = client(url, [])
    assert [r["id"] for r in nb.list("/api/dcim/interfaces/", device_id=7, limit=2)] == [1, 2, 3, 4, 5]
    assert script.seen[2]["path"] == "/api/dcim/interfaces/?device_id=7&limit=2&offset=4"  # asked of our server
    assert nb.requests == 3


def test_validate_certs_false_warns() -> None:
    warnings: list[str] = []
    NetBoxClient("https://netbox.invalid", "t", validate_certs=False, warn=warnings.append)
    assert warnings == [
        "TLS verification of NetBox at https://netbox.invalid is disabled (netbox_validate_certs=false)"
    ]
    NetBoxClient("https://netbox.invalid", "t", warn=warnings.append)
    assert len(warnings) == 1


def test_an_unreadable_ca_bundle_fails_at_once(tmp_path: Any) -> None:
    with pytest.raises(OSError):
        NetBoxClient("https://netbox.invalid", "t", ca_path=str(tmp_path / "missing.pem"))
