"""The dependency direction of DESIGN.md §3, enforced.

`domain/` is pure: standard library and pydantic only, no I/O, no clock, no
randomness, no environment. That is what lets the workflow replay it
deterministically and lets unit tests run it without servers. Workflows must not
reach the database; store and activities must not reach the process wiring above
them. The checks read every source file with `ast`, so an import hidden in a
function, under `TYPE_CHECKING`, or spelled as an `importlib.import_module("...")`
string is caught too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "carepath"

# Top-level modules the domain must never import.
DOMAIN_FORBIDDEN_MODULES = frozenset(
    {
        "temporalio",
        "asyncpg",
        "structlog",
        "fastapi",
        "uvicorn",
        "httpx",
        "yaml",
        "os",
        "sys",
        "subprocess",
        "socket",
        "random",
        "secrets",
        "time",
    }
)
# Names whose import alone generates ids or reads the clock.
DOMAIN_FORBIDDEN_NAMES = frozenset({"uuid.uuid1", "uuid.uuid4", "time.time", "time.monotonic"})
# Besides the standard library, the only third-party packages the domain may use.
DOMAIN_ALLOWED_THIRD_PARTY = frozenset(
    {"pydantic", "pydantic_core", "annotated_types", "typing_extensions"}
)

# Reads of the clock, the environment or a random id source, by fully qualified
# name (after resolving import aliases) ...
FORBIDDEN_CALLS_QUALIFIED = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "os.environ",
        "os.environb",
        "os.getenv",
        "uuid.uuid1",
        "uuid.uuid4",
    }
)
# ... and as written, for code where the name is not bound by a visible import.
FORBIDDEN_CALLS_WRITTEN = frozenset(
    {
        "datetime.now",
        "datetime.utcnow",
        "date.today",
        "time.time",
        "time.monotonic",
        "os.environ",
        "os.getenv",
        "uuid.uuid1",
        "uuid.uuid4",
    }
)


@dataclass(frozen=True)
class Import:
    module: str
    line: int


def _dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a chain of attribute accesses on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _resolve_relative(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def imports_of(source: str, package: str = "") -> Iterator[Import]:
    """Every module a source file imports: statements, `from` imports (a name
    imported from a module is reported as `module.name` as well, since it may be a
    submodule), and `importlib.import_module` / `__import__` with a string."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node.module, node.level, package)
            yield Import(base, node.lineno)
            for alias in node.names:
                if alias.name != "*":
                    yield Import(f"{base}.{alias.name}" if base else alias.name, node.lineno)
        elif isinstance(node, ast.Call):
            func = _dotted(node.func)
            if func in {"importlib.import_module", "import_module", "__import__"}:
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield Import(arg.value, node.lineno)
                else:
                    # A computed module name cannot be checked: report it as such.
                    yield Import("<dynamic import>", node.lineno)


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> fully qualified name, from the file's import statements."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _forbidden_access(written: str, aliases: dict[str, str]) -> bool:
    head, _, rest = written.partition(".")
    qualified = (
        f"{aliases[head]}.{rest}" if head in aliases and rest else aliases.get(head, written)
    )
    if qualified in FORBIDDEN_CALLS_QUALIFIED:
        return True
    return any(written == w or written.endswith(f".{w}") for w in FORBIDDEN_CALLS_WRITTEN)


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def domain_violations(source: str, filename: str = "<string>") -> list[str]:
    """Why `source`, as a module of carepath.domain, breaks the purity rules (empty if it does not)."""
    package = "carepath.domain"
    found: list[str] = []
    for imp in imports_of(source, package):
        top = imp.module.split(".")[0]
        where = f"{filename}:{imp.line}"
        if imp.module == "<dynamic import>":
            found.append(f"{where}: dynamic import of a computed module name")
        elif top in DOMAIN_FORBIDDEN_MODULES:
            found.append(f"{where}: imports {imp.module} (forbidden in the domain)")
        elif imp.module in DOMAIN_FORBIDDEN_NAMES:
            found.append(f"{where}: imports {imp.module} (ids and time are passed in)")
        elif top == "carepath":
            if imp.module != package and not imp.module.startswith(f"{package}."):
                found.append(f"{where}: imports {imp.module} (domain depends on nothing above it)")
        elif not _is_stdlib(top) and top not in DOMAIN_ALLOWED_THIRD_PARTY:
            found.append(f"{where}: imports {imp.module} (domain uses stdlib and pydantic only)")
    tree = ast.parse(source)
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            written = _dotted(node)
            if written and _forbidden_access(written, aliases):
                found.append(
                    f"{filename}:{node.lineno}: uses {written} "
                    "(reads the clock, the environment or a random source)"
                )
    return sorted(set(found))


def layer_violations(
    source: str, filename: str, package: str, forbidden_prefixes: frozenset[str]
) -> list[str]:
    """Imports of `source` that fall under any of `forbidden_prefixes`."""
    return sorted(
        {
            f"{filename}:{imp.line}: imports {imp.module}"
            for imp in imports_of(source, package)
            if any(imp.module == p or imp.module.startswith(f"{p}.") for p in forbidden_prefixes)
        }
    )


def _modules(layer: str) -> list[tuple[Path, str]]:
    """(file, its package) for every .py file of a carepath sub-package."""
    out = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        # The package a relative import is resolved against: the containing
        # package for a module, the package itself for an __init__.py.
        rel = path.relative_to(SRC).with_suffix("")
        out.append((path, ".".join(rel.parts[:-1])))
    return out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


class TestDomainIsPure:
    def test_domain_has_modules_to_check(self) -> None:
        # A moved or renamed package must not turn the guard into a no-op.
        assert len(_modules("domain")) >= 2

    def test_domain_imports_only_stdlib_pydantic_and_itself(self) -> None:
        found = [
            v
            for path, _ in _modules("domain")
            for v in domain_violations(_read(path), str(path.relative_to(ROOT)))
        ]
        assert not found, "the domain must stay pure (DESIGN.md §3):\n" + "\n".join(found)


class TestLayerDirection:
    @pytest.mark.parametrize(
        ("layer", "forbidden"),
        [
            ("store", frozenset({"carepath.api", "carepath.cli", "carepath.workers"})),
            ("activities", frozenset({"carepath.api", "carepath.cli", "carepath.workers"})),
            ("workflows", frozenset({"asyncpg", "carepath.store"})),
        ],
    )
    def test_layer_does_not_import_what_sits_above_or_beside_it(
        self, layer: str, forbidden: frozenset[str]
    ) -> None:
        assert _modules(layer), f"src/carepath/{layer} has no modules"
        found = [
            v
            for path, package in _modules(layer)
            for v in layer_violations(_read(path), str(path.relative_to(ROOT)), package, forbidden)
        ]
        assert not found, f"{layer} imports what it must not:\n" + "\n".join(found)


class TestGuardCanFail:
    """The checkers are proven on small sources, so a green run means something."""

    def test_reports_a_temporal_import_and_a_clock_read(self) -> None:
        found = domain_violations("import temporalio\n\ndef f():\n    return datetime.now()\n")
        assert any("temporalio" in v for v in found)
        assert any("datetime.now" in v for v in found)

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("from temporalio import workflow\n", "temporalio"),
            ("import asyncpg as pg\n", "asyncpg"),
            ("import importlib\nimportlib.import_module('structlog')\n", "structlog"),
            ("__import__('fastapi')\n", "fastapi"),
            ("import importlib\nimportlib.import_module(name)\n", "dynamic import"),
            ("from os import environ\n", "os"),
            ("import os\nx = os.getenv('X')\n", "os.getenv"),
            ("from uuid import uuid4\n", "uuid.uuid4"),
            ("import uuid\nx = uuid.uuid1()\n", "uuid.uuid1"),
            ("from datetime import datetime as dt\nf = dt.utcnow\n", "dt.utcnow"),
            ("import datetime\nd = datetime.date.today()\n", "datetime.date.today"),
            ("from time import monotonic\n", "time.monotonic"),
            ("import random\n", "random"),
            ("import requests\n", "stdlib and pydantic only"),
            ("from carepath.store import events\n", "carepath.store"),
            ("from .. import workers\n", "carepath.workers"),
        ],
    )
    def test_reports_each_kind_of_violation(self, source: str, expected: str) -> None:
        found = domain_violations(source)
        assert any(expected in v for v in found), f"not reported: {expected!r} in {found}"

    @pytest.mark.parametrize(
        "source",
        [
            "from datetime import datetime, timedelta\n\ndef due(at: datetime) -> datetime:\n"
            "    return at + timedelta(days=14)\n",
            "import uuid\nfrom uuid import UUID\nx: UUID = uuid.UUID(int=0)\n",
            "from pydantic import BaseModel\nfrom carepath.domain.events import Event\n",
            "from . import events\nfrom .state import EpisodeState\n",
        ],
    )
    def test_accepts_pure_code(self, source: str) -> None:
        assert domain_violations(source) == []

    def test_layer_check_reports_a_workflow_reaching_the_store(self) -> None:
        found = layer_violations(
            "from carepath.store.events import append\nimport asyncpg\n",
            "w.py",
            "carepath.workflows",
            frozenset({"asyncpg", "carepath.store"}),
        )
        assert len(found) >= 2
