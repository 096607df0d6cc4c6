"""Typer's Rich help without the two Rich modules it imports and CarePath never uses.

`typer.rich_utils`, which draws every `--help` and usage error, imports `rich.markdown`
(for help written in Markdown, `rich_markup_mode="markdown"`; CarePath's is "rich") and
`rich.traceback` (for pretty tracebacks, which `cli.main` turns off). Together they are
about 100 ms of a 300 ms `carepath --help`, most of it `markdown_it`.

`import_rich_help` imports `typer.rich_utils` with stand-ins for those two modules in
place, then takes the stand-ins out of `sys.modules` again, so any later `import
rich.markdown` gets the real module. The two names `typer.rich_utils` took from them
(`Markdown`, `Traceback`) are placeholders that import the real class the first time
they are called or asked for an attribute, so the help reads the same either way
(`tests/unit/test_cli_startup.py` compares the two).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# The modules `typer.rich_utils` imports without needing them here, and the name it takes
# from each.
UNUSED = (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback"))


class _Deferred(type):
    """The metaclass of a placeholder: calling it, or asking it for an attribute
    (`Traceback.from_exception`), imports and uses the real class."""

    _module: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls.real(), name)

    def real(cls) -> Any:
        return getattr(importlib.import_module(cls._module), cls.__name__)


def import_rich_help() -> None:
    """Import `typer.rich_utils` without `rich.markdown` and `rich.traceback` (a no-op
    once it is imported)."""
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins: dict[str, types.ModuleType] = {}
    for module_name, name in UNUSED:
        if module_name in sys.modules:
            continue
        module = types.ModuleType(module_name)
        setattr(module, name, _Deferred(name, (), {"_module": module_name}))
        stand_ins[module_name] = module
    sys.modules.update(stand_ins)
    try:
        importlib.import_module("typer.rich_utils")
    finally:
        for module_name, module in stand_ins.items():
            if sys.modules.get(module_name) is module:
                del sys.modules[module_name]
