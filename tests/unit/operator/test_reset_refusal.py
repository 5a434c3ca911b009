"""bm.lifecycle.reset refuses without the confirmation before it talks to NetBox or Redis.

NetBox and Redis point at a listening socket that counts connections: a refusal must leave it untouched, while the
confirmed run (the control) does connect, which proves the counter sees a client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from helpers import ansible_playbook

pytestmark = [pytest.mark.slow]


class Listener:
    """Accepts and at once closes every connection on a free loopback port; counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.stop()


def run_reset(listener: Listener, *args: str) -> tuple[int, str]:
    proc = ansible_playbook(
        "bm.lifecycle.reset",
        *args,
        timeout=120,
        NETBOX_API=f"http://127.0.0.1:{listener.port}",
        NETBOX_TOKEN="nbt_dummykey0001.dummysecret",
        BM_REDIS_URL=f"redis://127.0.0.1:{listener.port}/0",
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["-e", "device=srv001"],
        ["-e", "device=srv001", "-e", "confirm_reset=srv002"],
        ["-e", "device=srv001", "-e", "confirm_reset=SRV001"],
        ["-e", "confirm_reset=srv001"],
        ["-e", "device=srv001", "--check"],
    ],
    ids=["no-confirmation", "other-device", "case-differs", "no-device", "check-mode"],
)
def test_reset_refuses_without_the_confirmation_and_contacts_nothing(listener: Listener, args: list[str]) -> None:
    rc, output = run_reset(listener, *args)
    assert rc != 0, output
    assert "refusing to reset" in output
    assert "Back to staged" not in output  # the transition task never started
    assert listener.connections == 0


def test_the_confirmed_reset_does_contact_netbox(listener: Listener) -> None:
    rc, output = run_reset(listener, "-e", "device=srv001", "-e", "confirm_reset=srv001")
    assert rc != 0  # nothing answers HTTP on the listener
    assert "refusing to reset" not in output
    assert listener.connections > 0
