"""Every plugin of the collection has complete docs: `ansible-doc` lists each module and filter and renders its page,
and each event source carries DOCUMENTATION (options described) and EXAMPLES that name it."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import COLLECTION, VENV_BIN, ansible_env

PLUGINS = {
    "module": sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("[a-z]*.py")),
    "filter": sorted(p.stem for p in (COLLECTION / "plugins" / "filter").glob("[a-z]*.py")),
}
SOURCES = sorted((COLLECTION / "extensions" / "eda" / "plugins" / "event_source").glob("[a-z]*.py"))


def ansible_doc(*args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), *args], env=ansible_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("kind", sorted(PLUGINS))
def test_ansible_doc_lists_every_plugin_with_complete_docs(kind: str) -> None:
    assert PLUGINS[kind], f"no {kind} plugins found"
    listed = json.loads(ansible_doc("-t", kind, "-l", "bm.lifecycle", "--json"))
    assert sorted(name.removeprefix("bm.lifecycle.") for name in listed) == PLUGINS[kind]
    pages = json.loads(ansible_doc("-t", kind, "--json", *(f"bm.lifecycle.{name}" for name in PLUGINS[kind])))
    for fqcn, page in pages.items():
        doc = page["doc"]
        assert doc.get("short_description") and doc.get("description"), fqcn
        for option, spec in (doc.get("options") or {}).items():
            assert spec.get("description"), f"{fqcn}: option {option} has no description"
        assert page.get("examples"), f"{fqcn}: no EXAMPLES"
        if kind == "module":
            assert page.get("return") is not None, f"{fqcn}: no RETURN"


def string_constants(path: Path) -> dict[str, str]:
    """The module-level string constants of a source file (DOCUMENTATION, EXAMPLES), without importing it."""
    constants = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            constants.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return constants


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_event_source_docs(path: Path) -> None:
    constants = string_constants(path)
    doc = yaml.safe_load(constants["DOCUMENTATION"])
    assert doc["short_description"] and doc["description"], path.name
    for option, spec in (doc.get("options") or {}).items():
        assert spec.get("description"), f"{path.name}: option {option} has no description"
    examples = yaml.safe_load(constants["EXAMPLES"])
    assert f"bm.lifecycle.{path.stem}" in json.dumps(examples), f"{path.name}: EXAMPLES do not use the source"
