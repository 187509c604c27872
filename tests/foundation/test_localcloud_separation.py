"""LocalCloud (localcloud/JenniferLocalCloud) is a distribution of its own: no production module
of JenniferDIRAC imports it, and it imports nothing of JenniferDIRAC (nor of DIRAC).

Imports are read from the syntax tree of every module, so comments and prose do not count and
`import x as y`, `from x import y`, imports inside functions, `importlib.import_module("x")`
and `__import__("x")` all do.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "JenniferDIRAC"
LOCALCLOUD = REPO / "localcloud" / "JenniferLocalCloud"
DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def imported_modules(source: str) -> set[str]:
    """Absolute module names a module imports, statically or by a constant string."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            name = node.args[0].value
            if callee in ("import_module", "__import__") and isinstance(name, str):
                found.add(name)
    return found


def modules_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def imports_of(root: Path, *packages: str) -> dict[str, list[str]]:
    """{module path: names it imports from any of packages}, for the modules that do."""
    found = {}
    for path in modules_under(root):
        hits = sorted(name for name in imported_modules(path.read_text())
                      if name.split(".")[0] in packages)
        if hits:
            found[str(path.relative_to(REPO))] = hits
    return found


@pytest.mark.parametrize("source, expected", [
    ("from JenniferLocalCloud import LocalCloud", {"JenniferLocalCloud"}),
    ("import JenniferLocalCloud.boot.runner as runner", {"JenniferLocalCloud.boot.runner"}),
    ("def f():\n    from JenniferLocalCloud.faults import FaultInjector", {"JenniferLocalCloud.faults"}),
    ("import importlib\nimportlib.import_module('JenniferLocalCloud')", {"importlib", "JenniferLocalCloud"}),
    ("__import__('JenniferLocalCloud.cloud')", {"JenniferLocalCloud.cloud"}),
    ("from . import cloud\n# import JenniferLocalCloud\ntext = 'JenniferLocalCloud is apart'", set()),
])
def test_the_reader_sees_every_form_of_import(source, expected):
    assert imported_modules(source) == expected


def test_the_reader_finds_the_imports_the_tests_make():
    """The tests do import LocalCloud (tests/conftest.py's local_cloud fixture): the scan is not
    blind to it."""
    assert "JenniferLocalCloud" in imported_modules((REPO / "tests" / "conftest.py").read_text())


def test_no_production_module_imports_localcloud():
    assert len(modules_under(PRODUCTION)) > 100
    assert imports_of(PRODUCTION, "JenniferLocalCloud") == {}


def test_no_production_module_names_localcloud_as_a_module_string():
    """ObjectLoader and plugin options load modules by dotted name: no string in production
    code is a dotted path into JenniferLocalCloud."""
    named = {}
    for path in modules_under(PRODUCTION):
        strings = [node.value for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)]
        hits = [s for s in strings if DOTTED_NAME.fullmatch(s) and s.split(".")[0] == "JenniferLocalCloud"]
        if hits:
            named[str(path.relative_to(REPO))] = hits
    assert named == {}


def test_localcloud_imports_nothing_of_jenniferdirac_or_dirac():
    assert len(modules_under(LOCALCLOUD)) > 20
    assert imports_of(LOCALCLOUD, "JenniferDIRAC", "DIRAC", "DIRACCommon") == {}


def test_the_distributions_require_each_other_only_through_the_extra():
    main = configparser.ConfigParser()
    main.read(REPO / "setup.cfg")
    local = configparser.ConfigParser()
    local.read(REPO / "localcloud" / "setup.cfg")
    assert "localcloud" not in main["options"]["install_requires"].lower()
    pinned = f"{local['metadata']['name']} == {_localcloud_version()}"
    assert main["options.extras_require"]["localcloud"].strip() == pinned
    assert "jenniferdirac" not in local["options"]["install_requires"].lower()
    assert "dirac" not in local["options"]["install_requires"].lower()


def _localcloud_version() -> str:
    tree = ast.parse((LOCALCLOUD / "__init__.py").read_text())
    (version,) = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                  and [getattr(t, "id", None) for t in node.targets] == ["__version__"]]
    return version
