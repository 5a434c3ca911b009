"""Pure parts of the mock: identities, payload checks, the QMP power hook, the CLI."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bm_mock_ilo import Bmc, QmpPower, Settings, SimulatedPower, derive
from bm_mock_ilo.cli import main, parser
from bm_mock_ilo.messages import RedfishError
from bm_mock_ilo.payload import Field, Spec, check, parse_json


def test_identities_are_deterministic_and_unique() -> None:
    assert derive("seed", 3) == derive("seed", 3)
    assert derive("seed", 3) != derive("other", 3)
    fleet = [derive("seed", i, nics=4) for i in range(1000)]
    macs = [m for ident in fleet for m in (ident.bmc_mac, *ident.nic_macs)]
    assert len(set(macs)) == len(macs)
    assert len({ident.serial for ident in fleet}) == 1000
    assert all(re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) for mac in macs)
    assert re.fullmatch(r"CZJ\d{4}[A-Z2-9]{3}", fleet[0].serial)
    assert len(fleet[0].password) == 8


def test_payload_check_reports_paths() -> None:
    spec: Spec = {"A": Field(int), "B": {"C": Field(str, enum=("x",))}, "D": Field(float)}
    check({"A": 1, "B": {"C": "x"}, "D": 2, "@odata.etag": "W/1"}, spec)
    with pytest.raises(RedfishError) as error:
        check({"A": 1.5, "B": {"C": "y", "E": 1}, "D": False}, spec)
    assert [m for m, _ in error.value.messages] == [
        "Base.1.4.PropertyValueTypeError",
        "Base.1.4.PropertyValueNotInList",
        "iLO.2.15.PropertyNotWritableOrUnknown",
        "Base.1.4.PropertyValueTypeError",
    ]
    assert error.value.messages[2][1] == ["B/E"]


@pytest.mark.parametrize("raw", [b"", b"[]", b"{", b"\x80"])
def test_parse_json_refuses_non_objects(raw: bytes) -> None:
    with pytest.raises(RedfishError) as error:
        parse_json(raw)
    assert error.value.status == 400


class FakeQmp:
    """A QMP server on a Unix socket that records the commands and reports a status."""

    def __init__(self, running: bool) -> None:
        self.running = running
        self.commands: list[dict[str, Any]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        while line := await reader.readline():
            command = json.loads(line)
            self.commands.append(command)
            if command["execute"] == "stop":
                writer.write(b'{"event": "STOP", "timestamp": {}}\n')
            result: Any = {"running": self.running, "status": "running"} if command["execute"] == "query-status" else {}
            writer.write(json.dumps({"return": result}).encode() + b"\n")
            await writer.drain()
        writer.close()


@pytest.mark.parametrize(("running", "start"), [(False, "cont"), (True, "system_reset")])
def test_qmp_power_hook(tmp_path: Path, running: bool, start: str) -> None:
    async def scenario() -> list[str]:
        fake = FakeQmp(running)
        server = await asyncio.start_unix_server(fake.serve, path=str(tmp_path / "ilo-0000.qmp"))
        hook = QmpPower(str(tmp_path / "{name}.qmp"), timeout=5)
        bmc = Bmc(derive("s", 0), Settings(), hook)
        bmc.set_boot("Once", "Pxe")
        async with server:
            await bmc.reset("On")
            assert (bmc.power_state, bmc.boot_enabled, bmc.counters.pxe_boots) == ("On", "Disabled", 1)
            await bmc.reset("ForceOff")
            await bmc.reset("On")
            await bmc.reset("GracefulShutdown")
        assert bmc.power_state == "Off"
        return [
            c["execute"] if c["execute"] != "human-monitor-command" else c["arguments"]["command-line"]
            for c in fake.commands
            if c["execute"] != "qmp_capabilities"
        ]

    commands = asyncio.run(scenario())
    assert commands == [
        "query-status",
        "boot_set n",
        start,
        "stop",
        "system_reset",
        "query-status",
        "boot_set c",
        start,
        "system_powerdown",
    ]


def test_simulated_power_runs_the_pxe_callback_once() -> None:
    booted: list[str] = []

    async def on_pxe(bmc: Bmc) -> None:
        booted.append(bmc.identity.name)

    async def scenario() -> None:
        hook = SimulatedPower(on_pxe)
        bmc = Bmc(derive("s", 1), Settings(post_seconds=0.01), hook)
        bmc.set_boot("Once", "Pxe")
        await bmc.reset("On")
        await asyncio.sleep(0.1)
        await bmc.reset("ForceRestart")
        await asyncio.sleep(0.1)
        await hook.close()

    asyncio.run(scenario())
    assert booted == ["ilo-0001"]


def test_cli_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    options = [a.option_strings[-1] for a in parser()._actions if a.option_strings]
    assert all(option in text for option in options)
    with pytest.raises(SystemExit):
        main(["--power", "qmp"])
