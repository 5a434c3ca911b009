"""Static checks of the two validation images' recipes: the RHEL 9 kickstart (not built here) and the shell scripts
shared with the lab image. The kickstart must embed exactly iso/validate_server.sh."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ISO = ROOT / "iso"
SCRIPT = ISO / "validate_server.sh"
PLAN_PACKAGES = {"lldpd", "dmidecode", "curl", "jq"}  # the plan's component 4


def render(*args: str) -> str:
    return subprocess.run(
        [str(ISO / "rhel9" / "render-ks.sh"), *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def sections(ks: str) -> dict[str, list[str]]:
    """Kickstart sections (%packages, %post, ...) -> their bodies, in order; fails on a section without %end."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    body: list[str] = []
    for line in ks.splitlines():
        if current is None and line.startswith("%") and not line.startswith("%end"):
            current, body = line, []
        elif current is not None and line.strip() == "%end":
            found.setdefault(current.split()[0], []).append("\n".join(body) + "\n")
            current = None
        elif current is not None:
            body.append(line)
    assert current is None, f"{current} has no %end"
    return found


def test_kickstart_embeds_the_same_validation_script() -> None:
    ks = render()
    match = re.search(
        r"^cat > /usr/local/bin/validate_server\.sh <<'BM_VALIDATE_SERVER_EOF'\n(.*?)^BM_VALIDATE_SERVER_EOF$",
        ks,
        re.MULTILINE | re.DOTALL,
    )
    assert match, "the kickstart does not install validate_server.sh"
    assert match.group(1) == SCRIPT.read_text()
    assert "ExecStart=/usr/local/bin/validate_server.sh" in ks


def test_kickstart_structure() -> None:
    ks = render()
    found = sections(ks)
    assert set(found) == {"%packages", "%post"}
    packages = {line.strip() for line in found["%packages"][0].splitlines() if line.strip()}
    assert packages >= PLAN_PACKAGES | {"ethtool", "iproute", "dracut-live"}
    for command in ("rootpw --lock", "network --bootproto=dhcp", "shutdown", "selinux --enforcing"):
        assert re.search(rf"^{re.escape(command)}", ks, re.MULTILINE), command
    assert not re.search(r"@[A-Z_]+@", ks), "a placeholder was left unrendered"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (requirements/apt.txt)")
def test_kickstart_post_passes_shellcheck(tmp_path: Path) -> None:
    for index, body in enumerate(sections(render())["%post"]):
        path = tmp_path / f"post-{index}.bash"
        path.write_text("#!/bin/bash\n" + body)
        result = subprocess.run(["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout


def test_kickstart_can_carry_the_callback_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    ks = render(str(ca))
    assert "cat > /etc/bm/ca.pem <<'BM_CA_EOF'\n-----BEGIN CERTIFICATE-----\nMIIB\n" in ks
    bad = tmp_path / "bad.pem"
    bad.write_text("nope\n")
    result = subprocess.run(
        [str(ISO / "rhel9" / "render-ks.sh"), str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and "no PEM certificate" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (requirements/apt.txt)")
@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("validate_server.sh", "sh"),
        ("lab/init", "sh"),
        ("lab/udhcpc.script", "sh"),
        ("lab/build.sh", "bash"),
        ("rhel9/render-ks.sh", "bash"),
    ],
)
def test_scripts_pass_shellcheck(path: str, dialect: str) -> None:
    result = subprocess.run(["shellcheck", "-s", dialect, str(ISO / path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("shell", [["dash", "-n"], ["busybox", "sh", "-n"], ["bash", "--posix", "-n"]])
def test_validation_script_parses_in_every_shell(shell: list[str]) -> None:
    if shutil.which(shell[0]) is None:
        pytest.skip(f"no {shell[0]}")
    subprocess.run([*shell, str(SCRIPT)], check=True, timeout=10)
