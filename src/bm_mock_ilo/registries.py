"""``JsonSchemas`` and ``Registries``: the collections HPE's tooling reads at login (with ``$expand=.``).

The JSON schema files themselves (``/redfish/v1/SchemaStore/…``) are not served; the two message registries are, with
the messages the mock answers (our wording; MessageIds, argument counts and severities as in the registries).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .bmc import Bmc
from .messages import BASE, ILO, RedfishError
from .resources import V1, Ctx, Json, Resource, collection, resource

SCHEMA_STORE = f"{V1}/SchemaStore/en"
REGISTRY_STORE = f"{V1}/RegistryStore/registries/en"
OEM_TYPES = (
    "HpeiLOServiceExt.v2_3_0",
    "HpeiLOSession.v2_1_0",
    "HpeiLOAccountService.v2_3_0",
    "HpeiLOAccount.v2_2_0",
    "HpeComputerSystemExt.v2_9_0",
    "HpeServerChassis.v2_3_1",
    "HpePowerMetricsExt.v2_2_0",
    "HpeServerPowerSupply.v2_0_0",
    "HpeSeaOfSensors.v2_0_0",
    "HpeServerFan.v2_0_0",
    "HpeiLO.v2_7_1",
    "HpeiLOManagerNetworkProtocol.v2_1_0",
    "HpeiLOSnmpService.v2_3_0",
    "HpeSNMPUser.v2_1_0",
    "HpeSNMPAlertDestination.v2_0_0",
    "HpeiLOLicense.v2_3_0",
)
COLLECTIONS = (
    "SessionCollection",
    "ManagerAccountCollection",
    "RoleCollection",
    "ComputerSystemCollection",
    "EthernetInterfaceCollection",
    "ChassisCollection",
    "ManagerCollection",
    "VirtualMediaCollection",
    "JsonSchemaFileCollection",
    "MessageRegistryFileCollection",
)
NEW_MODEL_COLLECTIONS = ("PowerSupplyCollection", "FanCollection")

# MessageId (without the registry prefix) -> (message with %1… placeholders, number of args, severity, resolution)
type Registry = Mapping[str, tuple[str, int, str, str]]
BASE_MESSAGES: Registry = {
    "Success": ("Request completed.", 0, "OK", "None."),
    "Created": ("Resource created.", 0, "OK", "None."),
    "AccountModified": ("Account changed.", 0, "OK", "None."),
    "AccountRemoved": ("Account deleted.", 0, "OK", "None."),
    "CreateLimitReachedForResource": ("No free slot left in this collection.", 0, "Critical", "Delete a member."),
    "InsufficientPrivilege": ("The account lacks the privilege for this request.", 0, "Critical", "Use another one."),
    "InternalError": ("The service failed on this request.", 0, "Critical", "Retry; reset the service if it lasts."),
    "MalformedJSON": ("The body is not a JSON object.", 0, "Critical", "Send a JSON object."),
    "NoValidSession": ("No valid session or credentials.", 0, "Critical", "Log in."),
    "PropertyMissing": ("Property %1 is required.", 1, "Warning", "Add the property."),
    "PropertyValueFormatError": ("Value %1 has the wrong format for %2.", 2, "Warning", "Fix the value."),
    "PropertyValueNotInList": ("Value %1 is not allowed for %2.", 2, "Warning", "Use an allowed value."),
    "PropertyValueTypeError": ("Value %1 has the wrong type for %2.", 2, "Warning", "Fix the type."),
    "ResourceCannotBeDeleted": ("This resource cannot be deleted.", 0, "Critical", "None."),
    "ResourceMissingAtURI": ("Nothing at %1.", 1, "Critical", "Check the URI."),
    "ServiceTemporarilyUnavailable": ("Busy; retry in %1 seconds.", 1, "Critical", "Retry later."),
    "SessionLimitExceeded": ("Too many sessions.", 0, "Critical", "Log out other sessions."),
}
ILO_MESSAGES: Registry = {
    "ETagTooLong": ("The If-Match value is too long.", 0, "Warning", "Send the ETag as read."),
    "InvalidOperationForSystemState": ("Not possible now: %1.", 1, "Warning", "Change the power state first."),
    "InvalidPasswordLength": ("Passwords must be %1 to %2 characters long.", 2, "Warning", "Change the password."),
    "LicenseKeyRequired": ("This feature needs a licence.", 0, "Warning", "Install a licence."),
    "LoginAttemptDelayed": ("Login refused for %1 seconds after failures.", 1, "Warning", "Wait and retry."),
    "MediaAlreadyInserted": ("Media already inserted.", 0, "Warning", "Eject it first."),
    "MethodNotAllowed": ("Method %1 is not allowed here.", 1, "Warning", "See the Allow header."),
    "PropertyNotWritableOrUnknown": ("Property %1 is read-only or unknown.", 1, "Warning", "Remove it."),
    "PropertyValueBadParam": ("Property %1 has a bad value: %2.", 2, "Warning", "Fix the value."),
    "ResetInProgress": ("The iLO is resetting.", 0, "OK", "Wait for it."),
    "ResetRequired": ("An iLO reset applies the change.", 0, "OK", "Reset the iLO."),
    "SNMPDisabled": ("SNMP is disabled.", 0, "Warning", "Enable SNMP first."),
    "SyslogFeatureDisabled": ("Remote syslog is disabled.", 0, "Warning", "Enable remote syslog first."),
    "UnableToModifyDuringSystemPOST": ("Not while the server is in POST.", 0, "Warning", "Retry after POST."),
    "UnauthorizedLoginAttempt": ("Wrong user name or password.", 0, "Critical", "Check the credentials."),
    "UserAlreadyExist": ("That user name is taken.", 0, "Warning", "Choose another."),
    "VirtualMediaIsDisabled": ("Virtual media is disabled.", 0, "Warning", "Enable virtual media first."),
}
REGISTRIES: Mapping[str, tuple[str, str, Registry]] = {
    "Base": (BASE, "DMTF", BASE_MESSAGES),
    "iLO": (ILO, "HPE", ILO_MESSAGES),
}


def schema_types(bmc: Bmc) -> dict[str, str]:
    """Schema name -> the ``@odata.type`` the BMC answers with, for every type it serves."""
    types = {name: f"#{version}.{name}" for name, version in bmc.profile.types.items()}
    types.update({name: f"#{name}.{name}" for name in COLLECTIONS})
    if "Fan" in types:
        types.update({name: f"#{name}.{name}" for name in NEW_MODEL_COLLECTIONS})
        types["PowerSupplyMetrics"] = "#PowerSupplyMetrics.v1_0_1.PowerSupplyMetrics"
    types.update({v.split(".")[0]: f"#{v}.{v.split('.')[0]}" for v in OEM_TYPES})
    return dict(sorted(types.items()))


def json_schemas(ctx: Ctx) -> Json:
    """GET JsonSchemas: one member per type the BMC serves."""
    names = schema_types(ctx.bmc)
    members = [f"{V1}/JsonSchemas/{name}" for name in names]
    return collection(f"{V1}/JsonSchemas", "JsonSchemaFileCollection", "JSON Schemas", members)


def json_schema(ctx: Ctx) -> Json:
    """GET one JsonSchemaFile: the type it describes and where the schema would be."""
    names = schema_types(ctx.bmc)
    name = next((n for n in names if n.lower() == ctx.params[0]), None)
    if name is None:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/JsonSchemas/{ctx.params[0]}")
    return resource(
        f"{V1}/JsonSchemas/{name}",
        ctx.bmc.profile.odata_type("JsonSchemaFile"),
        name,
        f"{name} Schema File",
        Description=f"Schema file of {name}",
        Schema=names[name],
        Languages=["en"],
        Location=[{"Language": "en", "Uri": f"{SCHEMA_STORE}/{name}.json/"}],
    )


def registries(ctx: Ctx) -> Json:
    """GET Registries."""
    members = [f"{V1}/Registries/{name}" for name in REGISTRIES]
    return collection(f"{V1}/Registries", "MessageRegistryFileCollection", "Registry File Collection", members)


def _registry_name(ctx: Ctx) -> str:
    name = next((n for n in REGISTRIES if n.lower() == ctx.params[0]), None)
    if name is None:
        raise RedfishError(404, f"{BASE}.ResourceMissingAtURI", f"{V1}/Registries/{ctx.params[0]}")
    return name


def registry_file(ctx: Ctx) -> Json:
    """GET one MessageRegistryFile: the registry version and where its document is."""
    name = _registry_name(ctx)
    prefix, _, _ = REGISTRIES[name]
    return resource(
        f"{V1}/Registries/{name}",
        ctx.bmc.profile.odata_type("MessageRegistryFile"),
        name,
        f"{name} Message Registry File",
        Description=f"{name} message registry file locations",
        Registry=prefix,
        Languages=["en"],
        Location=[{"Language": "en", "Uri": f"{REGISTRY_STORE}/{name}.json/"}],
    )


def registry_document(ctx: Ctx) -> Json:
    """GET RegistryStore/registries/en/{Base,iLO}.json: the MessageRegistry with the messages the mock answers."""
    name = _registry_name(ctx)
    prefix, owner, messages = REGISTRIES[name]
    return {
        "@odata.type": "#MessageRegistry.v1_0_0.MessageRegistry",
        "Id": prefix + ".0",
        "Name": f"{name} Message Registry",
        "Language": "en",
        "Description": f"The {name} messages this service answers with",
        "RegistryPrefix": name,
        "RegistryVersion": prefix.removeprefix(name + ".") + ".0",
        "OwningEntity": owner,
        "Messages": {
            key: {
                "Description": text,
                "Message": text,
                "Severity": severity,
                "NumberOfArgs": args,
                **({"ParamTypes": ["string"] * args} if args else {}),
                "Resolution": resolution,
            }
            for key, (text, args, severity, resolution) in messages.items()
        },
    }


def _r(pattern: str, **methods: object) -> Resource:
    return Resource(re.compile(pattern.lower()), **methods)  # type: ignore[arg-type]


RESOURCES = (
    _r(f"{V1}/jsonschemas", get=json_schemas),
    _r(f"{V1}/jsonschemas/([a-z0-9]+)", get=json_schema),
    _r(f"{V1}/registries", get=registries),
    _r(f"{V1}/registries/([a-z0-9]+)", get=registry_file),
    _r(f"{REGISTRY_STORE}/([a-z0-9]+)\\.json", get=registry_document),
)
