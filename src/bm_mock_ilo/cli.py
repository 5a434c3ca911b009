"""``bm-mock-ilo``: run a fleet of mock iLO 5 and iLO 6 BMCs until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import shlex
import signal
from pathlib import Path

from .bmc import DEFAULT_FIRMWARE, LICENSES, MODELS, Settings
from .fleet import Fleet
from .power import PowerHook, QmpPower, SimulatedPower, command_callback
from .tlscert import ensure_certificate, server_context

DEFAULT_STATE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bm-mock-ilo"


def _models(value: str) -> list[str]:
    models = value.split(",")
    if not all(model in MODELS for model in models):
        raise argparse.ArgumentTypeError(f"each model must be one of {', '.join(MODELS)}")
    return models


def parser() -> argparse.ArgumentParser:
    """The command line, every option documented."""
    p = argparse.ArgumentParser(
        prog="bm-mock-ilo",
        description="A fleet of mock HPE iLO 5 / iLO 6 BMCs: Redfish over HTTPS on loopback, one port (or address) "
        "per BMC. "
        "Test-only control surface under /_mock/ (state, counters, faults) on every BMC.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--count", type=int, default=1, help="number of BMCs")
    p.add_argument(
        "--seed",
        default="bm-lifecycle",
        help=(
            "seed of the identities (serial, UUID, MACs, password); "
            "the environment variable BM_MOCK_ILO_PASSWORD gives all BMCs one factory password instead"
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address all BMCs listen on (unless --first-address)")
    p.add_argument(
        "--base-port", type=int, default=0, help="port of the first BMC, the next ones follow; 0 = free ports"
    )
    p.add_argument("--first-address", help="give BMC i the address FIRST+i (e.g. 127.0.1.1), all on --base-port")
    p.add_argument("--inventory", type=Path, help="write the fleet as JSON here once it listens (test use: passwords)")
    p.add_argument("--nics", type=int, default=2, help="host NICs per server")
    p.add_argument(
        "--cert",
        type=Path,
        help="TLS certificate (PEM); default: generated once into --state-dir (a subdirectory with --first-address)",
    )
    p.add_argument("--key", type=Path, help="TLS private key (PEM) for --cert")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="where the generated certificate is kept")
    p.add_argument(
        "--model",
        default="ilo5",
        type=_models,
        help=f"iLO generation ({', '.join(MODELS)}); a comma-separated list is cycled over the BMCs (ilo5,ilo6: mixed)",
    )
    p.add_argument(
        "--firmware",
        default="",
        help="emulated firmware, default per model "
        + ", ".join(f"{m} {v}" for m, v in DEFAULT_FIRMWARE.items())
        + " (iLO 5 2.90+ adds SessionTimeout and the SNMP flags; iLO 6 1.64+ the DMTF ThermalSubsystem)",
    )
    p.add_argument(
        "--no-power-thermal",
        action="store_true",
        help="newer firmware: no deprecated Chassis/1/Power and Thermal (iLO 6 keeps PowerSubsystem, ThermalSubsystem)",
    )
    p.add_argument("--post-seconds", type=float, default=2.0, help="simulated POST duration")
    p.add_argument(
        "--manager-reset-seconds", type=float, default=5.0, help="how long Manager.Reset makes the iLO unreachable"
    )
    p.add_argument(
        "--manager-reset-mode",
        choices=("refuse", "503"),
        default="refuse",
        help="while the iLO reboots: refuse connections, or answer 503 ServiceTemporarilyUnavailable",
    )
    p.add_argument("--session-timeout", type=float, default=1800.0, help="idle session expiry, seconds")
    p.add_argument("--max-sessions", type=int, default=15, help="sessions per BMC before SessionLimitExceeded")
    p.add_argument(
        "--license", choices=sorted(LICENSES), default="advanced", help="iLO licence (remote syslog needs advanced)"
    )
    p.add_argument("--power", choices=("simulated", "qmp"), default="simulated", help="power hook")
    p.add_argument("--qmp-socket", help="QMP socket path template, required by --power qmp ({name}, {index})")
    p.add_argument("--pxe-command", help="run this command (BMC JSON on stdin) when a simulated host PXE-boots")
    p.add_argument("--no-control", action="store_true", help="do not serve /_mock/")
    p.add_argument("--log-level", default="WARNING", help="Python log level")
    return p


async def serve(args: argparse.Namespace) -> None:
    """Start the fleet, write the inventory, wait for a signal, stop."""
    if args.cert:
        cert, key = args.cert, args.key
    elif args.first_address:
        start = ipaddress.ip_address(args.first_address)
        addresses = [str(start + i) for i in range(args.count)]
        cert, key = ensure_certificate(args.state_dir / f"{start}+{args.count}", addresses)
    else:
        cert, key = ensure_certificate(args.state_dir)
    power: PowerHook
    if args.power == "qmp":
        power = QmpPower(args.qmp_socket)
    else:
        power = SimulatedPower(command_callback(shlex.split(args.pxe_command)) if args.pxe_command else None)
    settings = [
        Settings(
            model=model,
            firmware=args.firmware,
            post_seconds=args.post_seconds,
            manager_reset_seconds=args.manager_reset_seconds,
            manager_reset_mode=args.manager_reset_mode,
            session_timeout=args.session_timeout,
            max_sessions=args.max_sessions,
            license=args.license,
            power_thermal=not args.no_power_thermal,
        )
        for model in args.model
    ]
    fleet = Fleet(
        args.count,
        seed=args.seed,
        host=args.host,
        base_port=args.base_port,
        first_address=args.first_address,
        settings=settings,
        power=power,
        ssl_context=server_context(cert, key),
        control=not args.no_control,
        nics=args.nics,
        password=os.environ.get("BM_MOCK_ILO_PASSWORD") or None,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await fleet.start()
    try:
        if args.inventory:
            fleet.write_inventory(args.inventory)
        first = fleet.inventory()[0]
        logging.getLogger("bm_mock_ilo").warning(
            "%d BMCs listening, first %s", args.count, json.dumps({k: first[k] for k in ("name", "base_url")})
        )
        await stop.wait()
    finally:
        await fleet.stop()


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    args = parser().parse_args(argv)
    if args.count < 1 or (args.cert is None) != (args.key is None) or (args.power == "qmp" and not args.qmp_socket):
        parser().error("--count must be >= 1, --cert and --key go together, --power qmp needs --qmp-socket")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(args))
    return 0
