"""A fleet of mock HPE iLO 5 BMCs (Redfish over HTTPS) for the tests and the lab of bm-lifecycle."""

from .bmc import Bmc, Settings
from .fleet import Fleet
from .identity import Identity, derive
from .power import PowerHook, QmpPower, SimulatedPower

__all__ = ["Bmc", "Fleet", "Identity", "PowerHook", "QmpPower", "Settings", "SimulatedPower", "derive"]
