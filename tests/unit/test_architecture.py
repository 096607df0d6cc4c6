"""The dependency direction of DESIGN.md §3 and docs/architecture.md, enforced.

Every top-level package may import only the packages its arrows allow (`ALLOWED`), and
the arrows form no cycle. `domain/` is also pure: standard library and pydantic only,
no I/O, no clock, no randomness, no environment. That is what lets the workflow replay
it deterministically and lets unit tests run it without servers. The checks read every
source file with `ast`, so an import hidden in a function, under `TYPE_CHECKING`, or
spelled as an `importlib.import_module("...")` string is caught too.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The product's top-level packages (pyproject's wheel lists the same) and, for each, the
# packages it may import. An arrow that reaches only part of a package is narrowed in
# `NARROW`. `cli` is the composition root and may import everything.
PACKAGES = (
    "domain",
    "programs",
    "workflows",
    "store",
    "activities",
    "audit",
    "workers",
    "api",
    "devstack",
    "simulation",
    "cli",
)
ALLOWED: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "programs": frozenset({"domain"}),
    "workflows": frozenset({"domain"}),
    "store": frozenset({"domain"}),
    "activities": frozenset({"domain", "store", "workflows"}),
    "audit": frozenset({"domain", "store", "workflows"}),
    "workers": frozenset({"domain", "workflows", "activities", "store"}),
    "api": frozenset({"domain", "store", "audit", "workflows", "workers"}),
    "devstack": frozenset({"workers"}),
    # The cohort simulation drives the real workflow through its client facade, on the
    # embedded servers devstack starts.
    "simulation": frozenset(
        {"domain", "workflows", "activities", "store", "workers", "programs", "devstack"}
    ),
    "cli": frozenset(PACKAGES) - {"cli"},
}
NARROW: dict[tuple[str, str], frozenset[str]] = {
    # Activities share the workflow's message types, never the workflow itself.
    ("activities", "workflows"): frozenset({"workflows.messages"}),
    # Auditors and the API drive episodes through the client facade and its messages.
    ("audit", "workflows"): frozenset({"workflows.client", "workflows.messages"}),
    ("api", "workflows"): frozenset({"workflows.client", "workflows.messages"}),
    ("simulation", "workflows"): frozenset({"workflows.client", "workflows.messages"}),
}
# Arrows DESIGN.md §3 names as never allowed; kept here so a widened `ALLOWED` fails.
NEVER = frozenset(
    {
        ("workflows", "store"),
        ("workflows", "api"),
        ("workflows", "cli"),
        ("workflows", "activities"),
        ("store", "workflows"),
        ("store", "api"),
        ("activities", "api"),
        ("workers", "api"),
        ("workers", "cli"),
        ("audit", "workers"),
        ("audit", "api"),
    }
)
# Trees beside the product that the wheel does not ship.
NOT_SHIPPED = frozenset({"tests", "testing", "bench"})
# Third-party packages that would put I/O where it does not belong.
THIRD_PARTY_FORBIDDEN: dict[str, frozenset[str]] = {
    "workflows": frozenset({"asyncpg", "fastapi", "httpx"}),
    "store": frozenset({"temporalio", "fastapi"}),
}

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

# The stored record's schema: the event modules may import, of the domain, only the
# vocabulary, the actor model and each other, so that a change to the state or to a
# command can never change what an event is.
EVENT_MODULE_PATTERNS = ("events.py", "event_types*.py")
EVENT_ALLOWED_DOMAIN_MODULES = frozenset({"domain.vocabulary", "domain.actors"})

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
    """Why `source`, as a module of domain, breaks the purity rules (empty if it does not)."""
    package = "domain"
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
        elif top in PACKAGES:
            if top != package:
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


def event_modules(root: Path = ROOT) -> list[Path]:
    """The files that define events and their payload types."""
    return sorted({p for pattern in EVENT_MODULE_PATTERNS for p in (root / "domain").glob(pattern)})


def event_import_violations(
    source: str, filename: str = "<string>", siblings: frozenset[str] = frozenset()
) -> list[str]:
    """Imports of domain modules that an event module (`source`) must not depend on;
    `siblings` are the other event modules, which it may import."""
    allowed = EVENT_ALLOWED_DOMAIN_MODULES | siblings
    found: set[str] = set()
    for imp in imports_of(source, "domain"):
        # `from domain import vocabulary` also reports the bare package; the names
        # imported from it are what is judged.
        if imp.module.split(".")[0] != "domain" or imp.module == "domain":
            continue
        if not any(imp.module == m or imp.module.startswith(f"{m}.") for m in allowed):
            found.add(
                f"{filename}:{imp.line}: imports {imp.module} "
                "(events depend on domain.vocabulary and domain.actors only)"
            )
    return sorted(found)


def graph_violations(source: str, filename: str, package: str) -> list[str]:
    """Imports of `source`, a module of `package`'s tree, that no arrow allows."""
    owner = package.split(".")[0]
    found: set[str] = set()
    for imp in imports_of(source, package):
        top = imp.module.split(".")[0]
        where = f"{filename}:{imp.line}: {owner} imports {imp.module}"
        if top in NOT_SHIPPED:
            found.add(f"{where} (the product never imports {top}/, which the wheel lacks)")
        if top in THIRD_PARTY_FORBIDDEN.get(owner, frozenset()):
            found.add(f"{where} (no {top} in {owner})")
        if top not in PACKAGES or top == owner:
            continue
        if top not in ALLOWED[owner]:
            found.add(f"{where} (no arrow {owner} -> {top})")
            continue
        narrow = NARROW.get((owner, top))
        # `from workflows import messages` also reports the bare package; the names
        # imported from it are what the narrowing judges.
        if (
            narrow is not None
            and imp.module != top
            and not any(imp.module == n or imp.module.startswith(f"{n}.") for n in narrow)
        ):
            found.add(f"{where} ({owner} may use only {', '.join(sorted(narrow))})")
    return sorted(found)


def tree_violations(root: Path) -> list[str]:
    """Every forbidden import in the packages under `root`."""
    return [
        v
        for name in PACKAGES
        for path, package in _modules(name, root)
        for v in graph_violations(_read(path), str(path.relative_to(root)), package)
    ]


def _modules(layer: str, root: Path = ROOT) -> list[tuple[Path, str]]:
    """(file, its package) for every .py file of a top-level package."""
    out = []
    for path in sorted((root / layer).rglob("*.py")):
        # The package a relative import is resolved against: the containing
        # package for a module, the package itself for an __init__.py.
        rel = path.relative_to(root).with_suffix("")
        out.append((path, ".".join(rel.parts[:-1])))
    return out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One cycle of the graph as a path of names, or None if it is acyclic."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, frozenset())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _diagram_arrows() -> set[tuple[str, str]]:
    """The arrows of the mermaid diagram in docs/architecture.md (`a --> b`)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    arrows = set()
    for line in block.splitlines():
        left, sep, right = line.partition("-->")
        if sep:
            # `api --> workflows` or `api -->|client| workflows`
            target = right.split("|")[-1].strip()
            arrows.add((left.strip(), target))
    return arrows


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


class TestEventsDependOnTheVocabularyOnly:
    def test_event_modules_are_found(self) -> None:
        names = {path.name for path in event_modules()}
        assert {"events.py", "event_types.py", "event_types_care.py"} <= names

    def test_event_modules_import_only_the_vocabulary_the_actors_and_each_other(self) -> None:
        paths = event_modules()
        siblings = frozenset(f"domain.{path.stem}" for path in paths)
        found = [
            v
            for path in paths
            for v in event_import_violations(_read(path), str(path.relative_to(ROOT)), siblings)
        ]
        assert not found, "move what events need into domain/vocabulary.py:\n" + "\n".join(found)

    @pytest.mark.parametrize(
        "source",
        [
            "from domain.state import Stage\n",
            "from domain.commands import ReferralSource\n",
            "import domain.state\n",
            "from domain import decider\n",
            "from .state import EpisodeState\n",
        ],
    )
    def test_reports_an_event_module_importing_state_or_commands(self, source: str) -> None:
        assert event_import_violations(source) != []

    def test_accepts_the_vocabulary_the_actors_and_sibling_event_modules(self) -> None:
        source = (
            "from datetime import datetime\nfrom pydantic import AwareDatetime\n"
            "from domain.actors import Actor\nfrom domain import vocabulary\n"
            "from domain.vocabulary import Stage\nfrom domain.event_types import EventBase\n"
        )
        assert event_import_violations(source, siblings=frozenset({"domain.event_types"})) == []


class TestPackageGraph:
    def test_every_top_level_package_is_in_the_graph(self) -> None:
        on_disk = {
            p.name
            for p in ROOT.iterdir()
            if (p / "__init__.py").exists() and p.name not in {"bench", "testing", "tests"}
        }
        assert on_disk == set(PACKAGES)

    def test_the_wheel_ships_exactly_the_packages_of_the_graph(self) -> None:
        config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        assert set(config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) == set(
            PACKAGES
        )

    def test_allowed_arrows_form_no_cycle(self) -> None:
        assert _cycle(ALLOWED) is None

    def test_no_allowed_arrow_is_one_the_design_forbids(self) -> None:
        assert not {(a, b) for a, targets in ALLOWED.items() for b in targets} & NEVER

    def test_the_diagram_in_the_docs_shows_exactly_the_allowed_arrows(self) -> None:
        allowed = {(a, b) for a, targets in ALLOWED.items() for b in targets if a != "cli"}
        drawn = {(a, b) for a, b in _diagram_arrows() if a != "cli"}
        assert drawn == allowed

    @pytest.mark.parametrize("package", PACKAGES)
    def test_package_imports_only_along_its_arrows(self, package: str) -> None:
        modules = _modules(package)
        assert modules, f"{package}/ has no modules"
        found = [
            v
            for path, pkg in modules
            for v in graph_violations(_read(path), str(path.relative_to(ROOT)), pkg)
        ]
        assert not found, "imports against docs/architecture.md:\n" + "\n".join(found)


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
            ("from store import events\n", "store"),
            ("from .. import workers\n", "workers"),
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
            "from pydantic import BaseModel\nfrom domain.events import Event\n",
            "from . import events\nfrom .state import EpisodeState\n",
        ],
    )
    def test_accepts_pure_code(self, source: str) -> None:
        assert domain_violations(source) == []

    @pytest.mark.parametrize(
        ("package", "source", "expected"),
        [
            (
                "workflows",
                "from store.event_store import EventStore\n",
                "no arrow workflows -> store",
            ),
            ("workflows", "import asyncpg\n", "no asyncpg in workflows"),
            ("workflows", "from api import app\n", "no arrow workflows -> api"),
            ("domain", "from workflows import client\n", "no arrow domain -> workflows"),
            ("store", "import workflows.client\n", "no arrow store -> workflows"),
            ("activities", "from api.auth import User\n", "no arrow activities -> api"),
            ("activities", "from workflows.care_pathway import X\n", "only workflows.messages"),
            ("activities", "from workflows import care_pathway\n", "only workflows.messages"),
            ("audit", "from workers.replay import replay\n", "no arrow audit -> workers"),
            ("devstack", "from cli.up import run_up\n", "no arrow devstack -> cli"),
            ("api", "from testing import samples\n", "never imports testing/"),
            ("workers", "from api.app import create_app\n", "no arrow workers -> api"),
        ],
    )
    def test_graph_check_reports_an_import_against_the_arrows(
        self, package: str, source: str, expected: str
    ) -> None:
        found = graph_violations(source, "x.py", package)
        assert any(expected in v for v in found), f"not reported: {expected!r} in {found}"

    def test_graph_check_accepts_allowed_arrows(self) -> None:
        source = "from domain import decide\nfrom store.db import Pool\nimport workflows.messages\n"
        assert graph_violations(source, "x.py", "activities") == []

    def test_a_forbidden_import_added_to_a_tree_is_found(self, tmp_path: Path) -> None:
        for name in PACKAGES:
            (tmp_path / name).mkdir()
            (tmp_path / name / "__init__.py").write_text("")
        (tmp_path / "workflows" / "care.py").write_text("from domain import decide\n")
        assert tree_violations(tmp_path) == []
        (tmp_path / "workflows" / "care.py").write_text("from store.db import Pool\n")
        assert tree_violations(tmp_path) == [
            "workflows/care.py:1: workflows imports store.db (no arrow workflows -> store)",
            "workflows/care.py:1: workflows imports store.db.Pool (no arrow workflows -> store)",
        ]

    def test_cycle_finder_finds_a_cycle(self) -> None:
        graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}
        assert _cycle(graph) == ["a", "b", "c", "a"]
