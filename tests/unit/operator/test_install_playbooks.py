"""The install playbooks, run for real into a scratch root: the rendered systemd unit passes systemd-analyze verify,
the DHCP hook lands where ISC dhcpd's include or Kea's hook-library stanza points and works from there (each server's
own config check accepts the result); check mode writes nothing; a second run changes nothing."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT, ansible_playbook

pytestmark = [pytest.mark.slow]

UNIT = "bm-lifecycle-rulebook.service"


def recap(stdout: str) -> dict[str, int]:
    """The localhost line of PLAY RECAP as numbers."""
    line = next(x for x in stdout.splitlines() if x.startswith("localhost") and "changed=" in x)
    return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install the Debian package systemd (requirements/apt.txt)"
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)


def render_unit(unit_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return ansible_playbook(
        "bm.lifecycle.install_service",
        "--tags",
        "unit",
        "-e",
        f"bm_service_unit_dir={unit_dir}",
        "-e",
        f"bm_service_root={ROOT}",
        *extra,
    )


def test_the_rendered_service_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    proc = render_unit(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    unit = tmp_path / UNIT
    text = unit.read_text()
    lines = set(text.splitlines())
    assert (
        f"ExecStart={ROOT}/.venv/bin/ansible-rulebook -r bm.lifecycle.lifecycle -i {ROOT}/inventory/local.yml" in lines
    )
    assert f"Environment=ANSIBLE_CONFIG={ROOT}/ansible.cfg" in lines
    assert f"Environment=ANSIBLE_COLLECTIONS_PATH={ROOT}/collections" in lines
    assert any(x.startswith("Environment=JAVA_HOME=/") for x in lines)
    assert {"EnvironmentFile=/etc/bm-lifecycle/rulebook.env", "Restart=on-failure", "NoNewPrivileges=yes",
            "ProtectSystem=strict", "ReadWritePaths=-/srv/pxe/bm"} <= lines  # fmt: skip
    assert "{{" not in text and "{%" not in text
    check = verify(unit)
    assert check.returncode == 0 and not check.stderr.strip(), check.stderr


def test_systemd_analyze_verify_rejects_a_broken_unit(tmp_path: Path) -> None:
    """The verifier bites: a unit whose program does not exist fails."""
    assert render_unit(tmp_path, "-e", "bm_service_venv=/nonexistent").returncode == 0
    check = verify(tmp_path / UNIT)
    assert check.returncode != 0
    assert "/nonexistent/bin/ansible-rulebook" in check.stderr


@pytest.fixture
def dhcp_root(tmp_path: Path) -> tuple[Path, list[str]]:
    (tmp_path / "etc" / "dhcp").mkdir(parents=True)
    (tmp_path / "etc" / "dhcp" / "dhcpd.conf").write_text("authoritative;\n")
    args = [
        "-e", "bm_dhcp_hosts=localhost",
        "-e", f"bm_dhcp_collections_root={tmp_path}/collections",
        "-e", f"bm_dhcp_hook_conf={tmp_path}/etc/dhcp/bm-lifecycle-hook.conf",
        "-e", f"bm_dhcp_conf={tmp_path}/etc/dhcp/dhcpd.conf",
        "-e", f"bm_dhcp_kea_conf={tmp_path}/etc/kea/kea-dhcp4.conf",  # absent: auto-detection finds ISC dhcpd
        "-e", f"bm_dhcp_settings_file={tmp_path}/etc/bm-lifecycle/dhcp-hook.conf",
        "-e", f"bm_dhcp_spool_dir={tmp_path}/spool",
        "-e", f"bm_dhcp_systemd_dir={tmp_path}/systemd",
        "-e", "bm_dhcp_redis_url=redis://127.0.0.1:1/0",
        "-e", "bm_dhcp_service=",
    ]  # fmt: skip
    (tmp_path / "systemd").mkdir()
    assert shutil.which("dhcpd") or Path("/usr/sbin/dhcpd").exists(), "isc-dhcp-server (requirements/apt.txt)"
    return tmp_path, args


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_install_dhcp_hook_check_mode_writes_nothing(dhcp_root: tuple[Path, list[str]]) -> None:
    root, args = dhcp_root
    before = files_under(root), (root / "etc" / "dhcp" / "dhcpd.conf").read_text()
    proc = ansible_playbook("bm.lifecycle.install_dhcp_hook", *args, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recap(proc.stdout)["changed"] > 0
    assert (files_under(root), (root / "etc" / "dhcp" / "dhcpd.conf").read_text()) == before


def test_install_dhcp_hook_installs_a_working_hook_idempotently(dhcp_root: tuple[Path, list[str]]) -> None:
    root, args = dhcp_root
    first = ansible_playbook("bm.lifecycle.install_dhcp_hook", *args)
    assert first.returncode == 0, first.stdout + first.stderr
    second = ansible_playbook("bm.lifecycle.install_dhcp_hook", *args)
    assert second.returncode == 0 and recap(second.stdout)["changed"] == 0, second.stdout

    hook = root / "collections" / "ansible_collections" / "bm" / "lifecycle" / "files" / "dhcp_hook.py"
    conf = (root / "etc" / "dhcp" / "dhcpd.conf").read_text().splitlines()
    assert conf == ["authoritative;", f'include "{root}/etc/dhcp/bm-lifecycle-hook.conf";']
    block = (root / "etc" / "dhcp" / "bm-lifecycle-hook.conf").read_text()
    assert (
        f'"{hook}",' in block
        and "/usr/share/ansible/collections/ansible_collections" not in block.split("on commit")[1]
    )
    settings = root / "etc" / "bm-lifecycle" / "dhcp-hook.conf"
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert f"BM_HOOK_SPOOL={root}/spool" in settings.read_text().splitlines()

    # The spool's flush timer runs the installed hook with the installed settings, and systemd accepts both units.
    service = (root / "systemd" / "bm-dhcp-hook-flush.service").read_text().splitlines()
    assert f"ExecStart=/usr/bin/python3 -S {hook} --flush" in service
    assert f"Environment=BM_HOOK_CONFIG={settings}" in service and f"ReadWritePaths={root}/spool" in service
    assert "OnUnitActiveSec=30s" in (root / "systemd" / "bm-dhcp-hook-flush.timer").read_text().splitlines()
    for unit in ("bm-dhcp-hook-flush.service", "bm-dhcp-hook-flush.timer"):
        check = verify(root / "systemd" / unit)
        assert check.returncode == 0 and not check.stderr.strip(), check.stderr

    # Byte-compiled for the DHCP server's Python (no lease pays for compiling it); self-contained: no module_utils.
    files = hook.parent
    assert list((files / "__pycache__").glob("bm_lease_hook.*.pyc")), files_under(files)
    assert not (root / "collections" / "ansible_collections" / "bm" / "lifecycle" / "plugins").exists()
    # The installed copy runs on its own (standard library only): Redis is down, so it spools.
    env = {"PATH": os.environ["PATH"], "BM_HOOK_CONFIG": str(settings)}
    run = subprocess.run(
        ["/usr/bin/python3", "-S", str(hook), "10.1.100.21", "94:40:c9:5e:7a:b0", "ilo-srv001"],
        cwd="/", env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    spooled = list((root / "spool").glob("*.json"))
    assert len(spooled) == 1, run.stderr
    event = json.loads(spooled[0].read_text())
    assert event["event_type"] == "dhcp_lease" and event["data"]["mac"] == "94:40:c9:5e:7a:b0"


KEA_CONF = """// kea-dhcp4.conf as an operator keeps it: comments, a commented-out example of the hook list
{
"Dhcp4": {
    "interfaces-config": { "interfaces": [ ] },
    # "hooks-libraries": [ { "library": "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_legal_log.so" } ],
    "lease-database": { "type": "memfile", "lfc-interval": 3600 },
    /* the list, when there is one */
    HOOKS
    "subnet4": [ { "id": 1, "subnet": "192.0.2.0/24", "pools": [ { "pool": "192.0.2.100 - 192.0.2.199" } ] } ],
    "valid-lifetime": 600
}
}
"""
LEASE_CMDS = '{ "library": "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_lease_cmds.so" }'
HOOK_LISTS = {
    "no-list": "",
    "empty-list": '"hooks-libraries": [ ],',
    "other-library": f'"hooks-libraries": [\n        {LEASE_CMDS}\n    ],',
}


def kea_root(tmp_path: Path, hooks: str = "other-library") -> tuple[Path, list[str]]:
    """A scratch root with a kea-dhcp4.conf whose hooks-libraries list is `hooks` (a key of HOOK_LISTS)."""
    (tmp_path / "etc" / "kea").mkdir(parents=True)
    (tmp_path / "etc" / "kea" / "kea-dhcp4.conf").write_text(KEA_CONF.replace("HOOKS", HOOK_LISTS[hooks]))
    args = [
        "-e", "bm_dhcp_hosts=localhost",
        "-e", f"bm_dhcp_collections_root={tmp_path}/collections",
        "-e", f"bm_dhcp_conf={tmp_path}/etc/dhcp/dhcpd.conf",  # absent: auto-detection finds Kea
        "-e", f"bm_dhcp_kea_conf={tmp_path}/etc/kea/kea-dhcp4.conf",
        "-e", f"bm_dhcp_kea_stanza={tmp_path}/etc/kea/bm-lifecycle-hook.json",
        "-e", f"bm_dhcp_settings_file={tmp_path}/etc/bm-lifecycle/dhcp-hook.conf",
        "-e", f"bm_dhcp_spool_dir={tmp_path}/spool",
        "-e", f"bm_dhcp_hook_owner={getpass.getuser()}",
        "-e", f"bm_dhcp_systemd_dir={tmp_path}/systemd",
        "-e", "bm_dhcp_redis_url=redis://127.0.0.1:1/0",
        "-e", "bm_dhcp_service=",
    ]  # fmt: skip
    (tmp_path / "systemd").mkdir()
    assert Path("/usr/sbin/kea-dhcp4").exists(), "kea-dhcp4-server (requirements/apt.txt)"
    return tmp_path, args


def test_install_dhcp_hook_for_kea_check_mode_writes_nothing(tmp_path: Path) -> None:
    root, args = kea_root(tmp_path)
    conf = root / "etc" / "kea" / "kea-dhcp4.conf"
    before = files_under(root), conf.read_text()
    proc = ansible_playbook("bm.lifecycle.install_dhcp_hook", *args, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recap(proc.stdout)["changed"] > 0
    include = f'<?include "{root}/etc/kea/bm-lifecycle-hook.json"?>'
    assert any(line.startswith("+") and include in line for line in proc.stdout.splitlines()), proc.stdout  # diff
    assert (files_under(root), conf.read_text()) == before


@pytest.mark.parametrize("hooks", sorted(HOOK_LISTS))
def test_install_dhcp_hook_for_kea_installs_a_working_hook_idempotently(tmp_path: Path, hooks: str) -> None:
    root, args = kea_root(tmp_path, hooks)
    first = ansible_playbook("bm.lifecycle.install_dhcp_hook", *args)
    assert first.returncode == 0, first.stdout + first.stderr
    second = ansible_playbook("bm.lifecycle.install_dhcp_hook", *args)
    assert second.returncode == 0 and recap(second.stdout)["changed"] == 0, second.stdout

    files = root / "collections" / "ansible_collections" / "bm" / "lifecycle" / "files"
    stanza_path = root / "etc" / "kea" / "bm-lifecycle-hook.json"
    stanza = json.loads(stanza_path.read_text())
    assert stanza == {
        "library": "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_run_script.so",
        "parameters": {"name": str(files / "kea-hook.sh"), "sync": False},
    }
    conf = root / "etc" / "kea" / "kea-dhcp4.conf"
    text = conf.read_text()
    assert text.count(f'<?include "{stanza_path}"?>') == 1, text
    assert '# "hooks-libraries"' in text and "// kea-dhcp4.conf as an operator keeps it" in text  # comments kept
    check = subprocess.run(["/usr/sbin/kea-dhcp4", "-t", str(conf)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert list((files / "__pycache__").glob("kea_hook.*.pyc")) and os.access(files / "kea-hook.sh", os.X_OK)

    # The installed hook as Kea runs it: the hook point as argument, only Kea's variables; Redis is down: it spools.
    kea_env = {"LEASES4_SIZE": "1", "LEASES4_AT0_ADDRESS": "10.1.100.22", "LEASES4_AT0_HWADDR": "94:40:c9:5e:7a:b1",
               "BM_HOOK_CONFIG": str(root / "etc" / "bm-lifecycle" / "dhcp-hook.conf")}  # fmt: skip
    run = subprocess.run([str(files / "kea-hook.sh"), "leases4_committed"], cwd="/", env=kea_env,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert run.returncode == 0, run.stderr
    [spooled] = (root / "spool").glob("*.json")
    event = json.loads(spooled.read_text())
    assert event["data"]["mac"] == "94:40:c9:5e:7a:b1" and event["source"].startswith("kea-dhcp4@")


def test_install_dhcp_hook_refuses_to_guess(tmp_path: Path) -> None:
    root, args = kea_root(tmp_path)
    (root / "etc" / "dhcp").mkdir()
    (root / "etc" / "dhcp" / "dhcpd.conf").write_text("authoritative;\n")  # both servers' configuration: which one?
    proc = ansible_playbook("bm.lifecycle.install_dhcp_hook", *args, "--check")
    assert proc.returncode != 0 and "set -e bm_dhcp_server=isc or kea" in proc.stdout, proc.stdout
