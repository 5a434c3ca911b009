"""execution-environment.yml and decision-environment.yml: ansible-builder accepts them offline, and they list the
third-party packages the collection's code imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import COLLECTION, ROOT, VENV_BIN

pytestmark = [pytest.mark.slow]

# Import name -> PyPI name, for the packages the collection imports.
PACKAGES = {
    "aiohttp": "aiohttp",
    "redis": "redis",
    "jsonschema": "jsonschema",
    "pynetbox": "pynetbox",
    "requests": "pynetbox",  # pynetbox's transport: _netbox configures its session
    "urllib3": "pynetbox",  # requests' connection pool: _netbox reads its exception types
}


def third_party_imports(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {n.split(".")[0] for n in names}
    return found - set(sys.stdlib_module_names) - {"ansible", "ansible_collections", "__future__"}


def python_deps(definition: Path) -> set[str]:
    deps = yaml.safe_load(definition.read_text())["dependencies"]["python"]
    return {d.split("==")[0].split(">")[0].strip() for d in deps}


@pytest.mark.parametrize(
    ("definition", "code"),
    [
        ("execution-environment.yml", ["plugins/modules", "plugins/module_utils", "plugins/filter"]),
        ("decision-environment.yml", ["extensions/eda/plugins/event_source"]),
    ],
)
def test_the_environment_lists_what_the_code_imports(definition: str, code: list[str]) -> None:
    files = [f for d in code for f in sorted((COLLECTION / d).glob("*.py"))]
    imported = third_party_imports(files)
    assert imported, "no third-party import found: the scan is broken"
    assert {PACKAGES[name] for name in imported} <= python_deps(ROOT / definition)


def test_the_decision_environment_has_java_and_the_rulebook_runner() -> None:
    de = yaml.safe_load((ROOT / "decision-environment.yml").read_text())
    assert "ansible-rulebook" in python_deps(ROOT / "decision-environment.yml")
    assert any(s.startswith("java-17-openjdk") for s in de["dependencies"]["system"])
    assert de["additional_build_files"][0]["src"] == "collections/ansible_collections/bm/lifecycle"


@pytest.mark.parametrize("definition", ["execution-environment.yml", "decision-environment.yml"])
def test_ansible_builder_creates_the_build_context(definition: str, tmp_path: Path) -> None:
    context = tmp_path / "context"
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "create", "-f", definition, "-c", str(context)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Dockerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    requirements = (context / "_build" / "requirements.txt").read_text().split()
    assert sorted(requirements) == sorted(yaml.safe_load((ROOT / definition).read_text())["dependencies"]["python"])
    if definition == "decision-environment.yml":
        assert (context / "_build" / "bm_lifecycle" / "galaxy.yml").is_file()
        assert "JAVA_HOME" in containerfile
