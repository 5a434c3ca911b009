"""What tells an iLO 5 (ProLiant Gen10 Plus) from an iLO 6 (Gen11) in the answers: identity and schema versions.

Versions are the ones HPE's public resource definitions list (iLO 5 2.55, iLO 6 1.64-1.70); the hardware strings are
those of a DL360 of each generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """One iLO generation and the server it sits in."""

    manager: str  # "iLO 5"
    product_name: str  # Oem.Hpe.Moniker.PRODNAM
    product: str  # ServiceRoot.Product, Systems/1 and Chassis/1 Model
    sku: str
    bios: str
    cpu: str
    redfish_version: str
    types: Mapping[str, str]  # schema -> versioned namespace, e.g. "ComputerSystem" -> "ComputerSystem.v1_10_0"

    def odata_type(self, schema: str) -> str:
        """``ComputerSystem.v1_10_0.ComputerSystem`` for ``ComputerSystem`` (``@odata.type`` without its ``#``)."""
        return f"{self.types[schema]}.{schema}"


_COMMON = {
    "SessionService": "SessionService.v1_0_0",
    "Session": "Session.v1_0_0",
    "Role": "Role.v1_2_1",
    "EthernetInterface": "EthernetInterface.v1_4_1",
    "ManagerNetworkProtocol": "ManagerNetworkProtocol.v1_0_0",
    "VirtualMedia": "VirtualMedia.v1_2_0",
    "JsonSchemaFile": "JsonSchemaFile.v1_0_4",
    "MessageRegistryFile": "MessageRegistryFile.v1_0_4",
}

PROFILES: Mapping[str, Profile] = {
    "ilo5": Profile(
        manager="iLO 5",
        product_name="Integrated Lights-Out 5",
        product="ProLiant DL360 Gen10 Plus",
        sku="P55246-B21",
        bios="U46 v1.64 (03/14/2022)",
        cpu="Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        redfish_version="1.6.0",
        types={
            **_COMMON,
            "ServiceRoot": "ServiceRoot.v1_5_1",
            "AccountService": "AccountService.v1_5_0",
            "ManagerAccount": "ManagerAccount.v1_3_0",
            "ComputerSystem": "ComputerSystem.v1_10_0",
            "Chassis": "Chassis.v1_10_0",
            "Power": "Power.v1_3_0",
            "Thermal": "Thermal.v1_1_0",
            "Manager": "Manager.v1_5_1",
        },
    ),
    "ilo6": Profile(
        manager="iLO 6",
        product_name="Integrated Lights-Out 6",
        product="ProLiant DL360 Gen11",
        sku="P52499-B21",
        bios="U54 v2.16 (03/01/2024)",
        cpu="Intel(R) Xeon(R) Gold 6430",
        redfish_version="1.13.0",
        types={
            **_COMMON,
            "ServiceRoot": "ServiceRoot.v1_13_0",
            "AccountService": "AccountService.v1_15_0",
            "ManagerAccount": "ManagerAccount.v1_12_1",
            "ComputerSystem": "ComputerSystem.v1_18_0",
            "Chassis": "Chassis.v1_23_0",
            "Power": "Power.v1_7_1",
            "Thermal": "Thermal.v1_7_1",
            "Manager": "Manager.v1_19_1",
            "PowerSubsystem": "PowerSubsystem.v1_1_0",
            "PowerSupply": "PowerSupply.v1_5_0",
            "ThermalSubsystem": "ThermalSubsystem.v1_3_2",
            "ThermalMetrics": "ThermalMetrics.v1_3_1",
            "Fan": "Fan.v1_5_1",
            "EnvironmentMetrics": "EnvironmentMetrics.v1_3_2",
        },
    ),
}
