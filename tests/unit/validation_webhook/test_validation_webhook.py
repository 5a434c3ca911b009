"""bm.lifecycle.validation_webhook with aiohttp's test client, a real (private) Redis and a fake NetBox.

The token: handed out once to the server the BMC named; a second request revokes it and puts a refusal on the stream;
another identity is refused (journal warning, at most one a minute) and burns nothing. Every refusal of a report: the
right 4xx, a JSON error, nothing written to the stream, the token left as it was."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, TCPConnector
from aiohttp.test_utils import TestClient, TestServer

from ansible_collections.bm.lifecycle.plugins.module_utils import _batch, _envelope
from ansible_collections.bm.lifecycle.plugins.module_utils import _validation_token as tokens
from ansible_collections.bm.lifecycle.plugins.module_utils._redis import RedisClient
from ansible_collections.bm.lifecycle.plugins.module_utils._validation_token import Identity
from unit.validation_webhook.webhook_support import PLUGIN, device, identity_of, token_for

URL = "/api/v1/validation/report"
TOKEN_URL = "/api/v1/validation/token"
STREAM = "bm:events:validation_report"
OTHER = Identity("11111111-2222-3333-4444-555555555555", "CZJ9999999")


def post(
    cfg: Any,
    body: Any = None,
    *,
    token: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    path: str = URL,
) -> tuple[int, Any, Any]:
    """One request to a fresh app; (status, JSON body, headers)."""
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())

    async def go() -> tuple[int, Any, Any]:
        async with TestClient(TestServer(PLUGIN["Webhook"](cfg).app())) as client:
            resp = await client.request(method, path, data=data, headers=hdrs)
            return resp.status, await resp.json(content_type=None), resp.headers

    return asyncio.run(go())


def entries(bus: RedisClient) -> list[dict[str, Any]]:
    rows = bus.call("XRANGE", STREAM, "-", "+") or []
    return [_envelope.decode(dict(zip(r[1][::2], r[1][1::2], strict=True))[b"envelope"]) for r in rows]


def issue(bus: RedisClient, device_id: int = 7) -> str:
    return token_for(bus, device_id)


def ask(cfg: Any, identity: Identity, request_id: str = "request-of-the-image-0", device_id: str = "7") -> Any:
    """A token request as the image sends it."""
    system = {"uuid": identity.uuid.upper(), "serial": identity.serial}
    return post(cfg, {"device_id": device_id, "request_id": request_id, "system": system}, path=TOKEN_URL)


def assert_refused(bus: RedisClient, answer: tuple[int, Any, Any], status: int, error: str | None = None) -> None:
    code, body, headers = answer
    assert code == status, body
    assert headers["Content-Type"].startswith("application/json")
    assert body["status"] == "error"
    assert body["message"]
    if error:
        assert body["error"] == error
    assert entries(bus) == []


# --- accepted --------------------------------------------------------------------------------------------------------


def test_accepted_report_is_on_the_stream_before_the_answer_and_the_token_is_gone(
    cfg: Any, bus: RedisClient, report: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    token = issue(bus)
    caplog.set_level(logging.DEBUG)
    code, body, _ = post(cfg, report, token=token)
    assert code == 202, body
    assert body["status"] == "success"
    assert body["device_id"] == "7"
    [env] = entries(bus)
    assert env["event_id"] == body["event_id"]
    assert env["event_type"] == "validation_report"
    assert env["device"] == {"id": 7, "name": "srv007"}
    data = env["data"]
    assert data["hardware"]["model"] == "ProLiant DL360 Gen10"
    assert data["hardware"]["serial"] == "CZJ0000000"
    assert [(i["name"], i["mac"]) for i in data["interfaces"]] == [
        ("eth0", "94:40:c9:5e:7a:b1"),
        ("eth1", "94:40:c9:5e:7a:b0"),
    ]
    assert {e["name"] for e in data["excluded_interfaces"]} == {"dummy0", "usb0", "eth0.100", "br0"}
    assert tokens.accepted_at(bus, 7) is not None  # consumed: its accepted mark
    assert not tokens.verify(bus, 7, token)
    assert token not in json.dumps(env)
    assert token not in caplog.text
    # the raw tool output stays out of the bus (an envelope is at most 64 KiB)
    assert "dmidecode" not in json.dumps(data)


# --- the token handout -----------------------------------------------------------------------------------------------


def test_the_token_is_handed_out_once_to_the_server_the_bmc_named(
    cfg: Any, bus: RedisClient, report: dict[str, Any], netbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = identity_of(report)
    tokens.issue(bus, 7, server, 600)
    caplog.set_level(logging.DEBUG)
    code, body, headers = ask(cfg, server)
    assert code == 200, body
    assert body["status"] == "success" and body["device_id"] == "7"
    assert 0 < body["expires_in"] <= 600
    assert headers["Cache-Control"] == "no-store"
    assert body["token"] not in caplog.text
    assert post(cfg, report, token=body["token"])[0] == 202
    assert netbox.journal == []


def test_a_second_request_revokes_the_token_and_fails_the_device(
    cfg: Any, bus: RedisClient, report: dict[str, Any], netbox: Any
) -> None:
    server = identity_of(report)
    tokens.issue(bus, 7, server, 600)
    first = ask(cfg, server)[1]["token"]
    code, body, _ = ask(cfg, server, "request-of-someone-else")
    assert (code, body["error"]) == (409, "token_requested_twice")
    [refusal] = entries(bus)
    assert refusal["event_type"] == "validation_report"
    assert refusal["device"] == {"id": 7, "name": "srv007"}
    assert refusal["data"]["refused"]["reason"] == "token_requested_twice"
    assert "127.0.0.1" in refusal["data"]["refused"]["msg"]
    item = _batch.new_item({"id": "1-0", "envelope": refusal}, refusal["device"])  # the stage's read step
    assert _batch.fail_refused(item)
    assert (item["status"], item["failure"]["reason"]) == ("failed", "token_requested_twice")
    code, body, _ = post(cfg, report, token=first)  # the first caller's token stopped working too
    assert (code, body["error"]) == (401, "invalid_token")
    for request_id in ("request-of-the-image-0", "a-third-request-id"):
        code, body, _ = ask(cfg, server, request_id)
        assert (code, body["error"]) == (401, "token_revoked")
    assert len(entries(bus)) == 1  # one refusal, however many requests


def test_a_lost_answer_is_asked_again_with_the_same_request_id(
    cfg: Any, bus: RedisClient, report: dict[str, Any]
) -> None:
    tokens.issue(bus, 7, identity_of(report), 600)
    first = ask(cfg, identity_of(report))[1]["token"]
    code, body, _ = ask(cfg, identity_of(report))
    assert code == 200 and body["token"] != first
    assert entries(bus) == []
    assert post(cfg, report, token=first)[0] == 401
    assert post(cfg, report, token=body["token"])[0] == 202


def test_another_identity_is_refused_journaled_once_a_minute_and_burns_nothing(
    cfg: Any, bus: RedisClient, report: dict[str, Any], netbox: Any
) -> None:
    server = identity_of(report)
    tokens.issue(bus, 7, server, 600)
    for request_id in ("request-of-an-impostor", "request-of-an-impostor-2"):
        code, body, _ = ask(cfg, OTHER, request_id)
        assert (code, body["error"]) == (403, "identity_mismatch")
    assert entries(bus) == []
    [entry] = netbox.journal  # two refusals, one journal entry
    assert (entry["assigned_object_id"], entry["kind"]) == (7, "warning")
    assert f"presented {OTHER}, expected {server}" in entry["comments"]
    assert "127.0.0.1" in entry["comments"]
    assert 0 < int(bus.call("TTL", "bm:validation_warned:7")) <= 60
    token = ask(cfg, server)[1]["token"]  # the server itself still gets its token
    assert ask(cfg, OTHER, "request-of-an-impostor-3")[0] == 403  # after the handout too: not a theft
    assert tokens.verify(bus, 7, token)
    assert entries(bus) == []
    bus.call("DEL", "bm:validation_warned:7")  # a minute later
    assert ask(cfg, OTHER, "request-of-an-impostor-4")[0] == 403
    assert len(netbox.journal) == 2


def test_a_report_from_another_server_is_refused_and_burns_nothing(
    cfg: Any, bus: RedisClient, report: dict[str, Any], netbox: Any
) -> None:
    token = token_for(bus, 7, OTHER)  # the BMC named OTHER; the report is of the fixture's server
    assert_refused(bus, post(cfg, report, token=token), 403, "identity_mismatch")
    assert tokens.verify(bus, 7, token)
    [entry] = netbox.journal
    assert f"presented {identity_of(report)}, expected {OTHER}" in entry["comments"]


def test_token_requests_refused(cfg: Any, bus: RedisClient, report: dict[str, Any]) -> None:
    server = identity_of(report)
    assert ask(cfg, server)[1]["error"] == "no_token"  # none issued
    tokens.issue(bus, 7, server, 600)
    assert ask(cfg, server, request_id="short")[0] == 422
    assert post(cfg, {"device_id": "7", "request_id": "request-of-the-image-0"}, path=TOKEN_URL)[0] == 422
    assert post(cfg, raw=b"{", path=TOKEN_URL)[0] == 400
    assert post(cfg, {"x": "y" * 5000}, path=TOKEN_URL)[0] == 413
    assert post(cfg, {}, path=TOKEN_URL, headers={"Content-Type": "text/plain"})[0] == 415
    token = ask(cfg, server)[1]["token"]
    assert post(cfg, report, token=token)[0] == 202
    code, body, _ = ask(cfg, server, "request-after-the-report")
    assert (code, body["error"]) == (409, "token_used")
    assert len(entries(bus)) == 1  # the report, no refusal


def test_replayed_token_is_refused(cfg: Any, bus: RedisClient, report: dict[str, Any]) -> None:
    token = issue(bus)
    assert post(cfg, report, token=token)[0] == 202
    code, body, headers = post(cfg, report, token=token)
    assert code == 401
    assert body["error"] == "invalid_token"
    assert "Bearer" in headers["WWW-Authenticate"]
    assert len(entries(bus)) == 1


def test_concurrent_posts_with_one_token_accept_exactly_one(cfg: Any, bus: RedisClient, report: dict[str, Any]) -> None:
    token = issue(bus)

    async def go() -> list[int]:
        async with TestClient(TestServer(PLUGIN["Webhook"](cfg).app())) as client:
            hdrs = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            resps = await asyncio.gather(*(client.post(URL, data=json.dumps(report), headers=hdrs) for _ in range(8)))
            return sorted(r.status for r in resps)

    assert asyncio.run(go()) == [202] + [401] * 7
    assert len(entries(bus)) == 1


# --- refusals: nothing changes ---------------------------------------------------------------------------------------


def test_no_token(cfg: Any, bus: RedisClient, report: dict[str, Any]) -> None:
    issue(bus)
    answer = post(cfg, report)
    assert_refused(bus, answer, 401, "unauthorized")
    assert "Bearer" in answer[2]["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "token"])
def test_malformed_authorization(cfg: Any, bus: RedisClient, report: dict[str, Any], header: str) -> None:
    assert_refused(bus, post(cfg, report, headers={"Authorization": header}), 401, "unauthorized")


def test_wrong_token_leaves_the_right_one_usable(cfg: Any, bus: RedisClient, report: dict[str, Any]) -> None:
    token = issue(bus)
    assert_refused(bus, post(cfg, report, token=token[:-1] + ("A" if token[-1] != "A" else "B")), 401, "invalid_token")
    assert_refused(bus, post(cfg, {**report, "device_id": "8"}, token=token), 401, "invalid_token")
    assert post(cfg, report, token=token)[0] == 202


def test_device_not_in_validating(cfg: Any, bus: RedisClient, report: dict[str, Any], netbox: Any) -> None:
    netbox.devices[7] = device(7, state="validation_completed")
    token = issue(bus)
    assert_refused(bus, post(cfg, report, token=token), 409, "wrong_state")
    assert tokens.verify(bus, 7, token)  # not consumed


def test_unknown_device_and_other_tenant(cfg: Any, bus: RedisClient, report: dict[str, Any], netbox: Any) -> None:
    token = issue(bus, 9)
    assert_refused(bus, post(cfg, {**report, "device_id": "9"}, token=token), 404, "unknown_device")
    netbox.devices[9] = device(9, tenant="someone-else")
    assert_refused(bus, post(cfg, {**report, "device_id": "9"}, token=token), 403, "foreign_tenant")
    assert tokens.verify(bus, 9, token)


def test_oversize_body(cfg: Any, bus: RedisClient, report: dict[str, Any]) -> None:
    token = issue(bus)
    big = {**report, "agent": {"padding": "x" * (1024 * 1024)}}
    assert_refused(bus, post(cfg, big, token=token), 413, "too_large")

    async def chunked() -> int:  # no Content-Length: the cap holds while reading
        async def gen() -> Any:
            for _ in range(20):
                yield b" " * 65536

        async with TestClient(TestServer(PLUGIN["Webhook"](cfg).app())) as client:
            hdrs = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            resp = await client.post(URL, data=gen(), headers=hdrs)
            return resp.status

    assert asyncio.run(chunked()) == 413
    assert entries(bus) == []
    assert tokens.verify(bus, 7, token)


def test_too_many_interfaces(cfg: Any, bus: RedisClient, report: dict[str, Any]) -> None:
    token = issue(bus)
    many = [{**report["interfaces"][0], "name": f"eth{n}"} for n in range(300)]
    answer = post(cfg, {**report, "interfaces": many}, token=token)
    assert_refused(bus, answer, 422, "invalid_report")
    assert any("interfaces" in d for d in answer[1]["details"])


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"schema_version": NaN}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b""],
    ids=["truncated", "text", "nan", "not-utf8", "deep", "empty"],
)
def test_malformed_json(cfg: Any, bus: RedisClient, raw: bytes) -> None:
    token = issue(bus)
    assert_refused(bus, post(cfg, raw=raw, token=token), 400, "malformed_json")
    assert tokens.verify(bus, 7, token)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"device_id": 7}, "device_id"),
        ({"device_id": "../7"}, "device_id"),
        ({"schema_version": "1"}, "schema_version"),
        ({"interfaces": {"name": "eth0"}}, "interfaces"),
        ({"hardware": {"model": ["x"]}}, "hardware/model"),
        ({"lldp": "none"}, "lldp"),
        ({"unexpected": 1}, "(top)"),
    ],
)
def test_wrong_types(cfg: Any, bus: RedisClient, report: dict[str, Any], change: dict[str, Any], where: str) -> None:
    token = issue(bus)
    answer = post(cfg, {**report, **change}, token=token)
    assert_refused(bus, answer, 422, "invalid_report")
    assert any(d.startswith(where) for d in answer[1]["details"]), answer[1]
    assert tokens.verify(bus, 7, token)


def test_not_json_content_type(cfg: Any, bus: RedisClient, report: dict[str, Any]) -> None:
    token = issue(bus)
    answer = post(cfg, report, token=token, headers={"Content-Type": "text/plain"})
    assert_refused(bus, answer, 415, "unsupported_media_type")


def test_json_errors_for_unknown_paths_and_methods(cfg: Any, bus: RedisClient) -> None:
    assert_refused(bus, post(cfg, method="GET"), 405)
    assert_refused(bus, post(cfg, method="GET", path="/nope"), 404)


def test_backends_down_is_503_and_nothing_consumed(
    cfg: Any, bus: RedisClient, report: dict[str, Any], netbox: Any
) -> None:
    token = issue(bus)
    netbox.down = True
    code, body, headers = post(cfg, report, token=token)
    assert (code, body["error"]) == (503, "unavailable")
    assert headers["Retry-After"]
    assert tokens.verify(bus, 7, token)
    netbox.down = False
    cfg.redis = PLUGIN["_redis"].RedisSettings("redis://127.0.0.1:9/0")  # nothing listens on port 9
    assert post(cfg, report, token=token)[0] == 503
    assert entries(bus) == []


def test_openapi_document(cfg: Any) -> None:
    code, doc, _ = post(cfg, method="GET", path="/api/v1/openapi.json")
    assert code == 200
    assert doc["openapi"].startswith("3.1")
    op = doc["paths"][URL]["post"]
    assert {"202", "400", "401", "409", "413", "415", "422"} <= set(op["responses"])
    assert doc["components"]["schemas"]["Report"]["properties"]["device_id"]["type"] == "string"
    handout = doc["paths"][TOKEN_URL]["post"]
    assert {"200", "401", "403", "409", "422", "503"} <= set(handout["responses"])
    assert set(doc["components"]["schemas"]["TokenRequest"]["required"]) == {"device_id", "request_id", "system"}


# --- the source as ansible-rulebook runs it --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        {"port": "x"},
        {"port": 70000},
        {"nonsense": 1},
        {"certfile": "/nonexistent.pem"},
        {"certfile": "/nonexistent.pem", "keyfile": "/nonexistent.key"},
        {"redis_url": "http://x"},
        {"netbox_url": "ftp://x"},
        {"max_body_bytes": 10},
    ],
)
def test_bad_arguments_fail_up_front(args: dict[str, Any]) -> None:
    base = {"netbox_url": "http://127.0.0.1:1", "netbox_token": "nbt_x.y"}
    with pytest.raises(ValueError, match="validation_webhook"):
        asyncio.run(PLUGIN["main"](asyncio.Queue(), {**base, **args}))


def test_tls_is_the_default_and_plain_http_is_asked_for_and_warned_about(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from bm_mock_ilo.tlscert import ensure_certificate  # noqa: PLC0415

    for name in ("BM_WEBHOOK_CERTFILE", "BM_WEBHOOK_KEYFILE", "BM_WEBHOOK_PLAIN_HTTP"):
        monkeypatch.delenv(name, raising=False)
    base = {"netbox_url": "http://netbox.invalid", "netbox_token": "nbt_x.y", "redis_url": redis_server.url}
    with pytest.raises(ValueError, match="TLS is the default"):
        PLUGIN["Config"](base)
    with pytest.raises(ValueError, match="TLS is the default"):
        PLUGIN["Config"]({**base, "plain_http": "false"})
    cert, key = ensure_certificate(tmp_path, ["127.0.0.1"])
    monkeypatch.setenv("BM_WEBHOOK_CERTFILE", str(cert))
    monkeypatch.setenv("BM_WEBHOOK_KEYFILE", str(key))
    assert PLUGIN["Config"](base).ssl is not None  # from the environment (the stack's .lab/tls/)
    monkeypatch.setenv("BM_WEBHOOK_PLAIN_HTTP", "1")
    plain = PLUGIN["Config"]({**base, "port": _free_port()})
    assert plain.ssl is None

    async def start() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(PLUGIN["serve"](plain, ready))
        await asyncio.wait_for(ready.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    caplog.set_level(logging.INFO)
    asyncio.run(start())
    assert "serving plain HTTP" in caplog.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_main_serves_tls_puts_nothing_on_the_queue_and_cancels_cleanly(
    cfg: Any, bus: RedisClient, report: dict[str, Any], redis_server: Any, tmp_path: Path, netbox: Any
) -> None:
    from bm_mock_ilo.tlscert import ensure_certificate  # noqa: PLC0415

    cert, key = ensure_certificate(tmp_path, ["127.0.0.1"])
    port = _free_port()
    token = issue(bus)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    args = {"port": port, "certfile": str(cert), "keyfile": str(key), "redis_url": redis_server.url,
            "netbox_url": "http://netbox.invalid", "netbox_token": "nbt_x.y"}  # fmt: skip

    async def go() -> tuple[int, int]:
        original = PLUGIN["Config"].netbox
        PLUGIN["Config"].netbox = lambda _self: netbox()
        task = asyncio.create_task(PLUGIN["main"](queue, args))
        try:
            context = ssl.create_default_context(cafile=str(cert))
            async with ClientSession(connector=TCPConnector(ssl=context)) as session:
                for _ in range(100):
                    try:
                        async with session.get(f"https://127.0.0.1:{port}/api/v1/openapi.json") as r:
                            openapi_status = r.status
                            break
                    except OSError:
                        await asyncio.sleep(0.05)
                hdrs = {"Authorization": f"Bearer {token}"}
                async with session.post(f"https://127.0.0.1:{port}{URL}", json=report, headers=hdrs) as r:
                    status = r.status
        finally:
            PLUGIN["Config"].netbox = original
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return openapi_status, status

    assert asyncio.run(go()) == (200, 202)
    assert queue.empty()
    assert len(entries(bus)) == 1


def test_port_in_use_does_not_kill_the_source(redis_server: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = {
            "port": port,
            "redis_url": redis_server.url,
            "netbox_url": "http://x",
            "netbox_token": "nbt_x.y",
            "plain_http": True,
        }

        async def go() -> bool:
            task = asyncio.create_task(PLUGIN["main"](asyncio.Queue(), args))
            await asyncio.sleep(1.5)
            alive = not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return alive

        assert asyncio.run(go())


def test_documentation_is_yaml_and_lists_every_argument() -> None:
    import yaml  # noqa: PLC0415

    doc = yaml.safe_load(PLUGIN["DOCUMENTATION"])
    assert set(doc["options"]) == set(PLUGIN["Config"].KNOWN)
    assert yaml.safe_load(PLUGIN["EXAMPLES"])[0]["sources"][0]["bm.lifecycle.validation_webhook"]["port"] == 5000
