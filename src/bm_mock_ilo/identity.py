"""Deterministic identities of the fleet's servers, derived from a seed and an index."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

BMC_OUI = "94:40:c9"  # HPE
NIC_OUI = "b4:7a:f1"  # HPE
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class Identity:
    """What one server and its iLO are, for a given (seed, index)."""

    index: int
    name: str
    serial: str
    uuid: str
    bmc_mac: str
    nic_macs: tuple[str, ...]
    username: str
    password: str


def _mac(oui: str, value: int) -> str:
    low = value % (1 << 24)
    return f"{oui}:{low >> 16:02x}:{(low >> 8) & 0xFF:02x}:{low & 0xFF:02x}"


def derive(seed: str, index: int, nics: int = 2, prefix: str = "ilo") -> Identity:
    """The identity of server ``index``: the same seed always gives the same fleet, MACs never collide within it."""
    digest = hashlib.sha256(f"{seed}/{index}".encode()).digest()
    base = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:3])
    serial = "CZJ" + "".join(str(b % 10) for b in digest[:4]) + "".join(_ALNUM[b % 32] for b in digest[4:7])
    password = "".join(_ALNUM[b % 32] for b in digest[16:24])
    return Identity(
        index=index,
        name=f"{prefix}-{index:04d}",
        serial=serial,
        uuid=str(uuid.UUID(bytes=digest[:16], version=4)).upper(),
        bmc_mac=_mac(BMC_OUI, base + index),
        nic_macs=tuple(_mac(NIC_OUI, base + index * 8 + n) for n in range(nics)),
        username="Administrator",
        password=password,
    )
