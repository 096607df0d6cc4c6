"""The rule registry: every command is declared once, by the decorator on the rule that judges it.

`@rule(c.CancelSession, roles=FRONT_DESK)` above `cancel_session` records the command
class, the roles that may issue it and the function that decides it. Everything that
lists commands is derived from here, in registration order: the `Command` union
(`domain.commands`), the role check (`domain.roles`), the decider's dispatch and the
API's endpoints (`api.command_specs`).

A rule module registers its rules as it is imported; the decider imports the rule
modules in the order of the pathway, so that order is the union's, the OpenAPI
document's and the CLI's.

The HTTP path and the request example are not arguments of `rule`: they describe what
the command carries and how a caller sends it, so they sit on the command class, next to
its fields (`CommandBase.endpoint`). The decorator says who may issue the command and
what it does. A new command is then two declarations: its class and its rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from domain.actors import Role
from domain.command_base import CommandBase

if TYPE_CHECKING:
    from domain.emitter import Emitter

C = TypeVar("C", bound=CommandBase)


@dataclass(frozen=True)
class Rule:
    """One command: its class, who may issue it and the function that decides it."""

    command: type[CommandBase]
    roles: frozenset[Role]
    decide: Callable[[Emitter, Any], None]

    @property
    def kind(self) -> str:
        """The command's `type` tag, e.g. `cancel_session`."""
        return command_type(self.command)


_REGISTRY: dict[str, Rule] = {}


def command_type(command: type[CommandBase]) -> str:
    """The `type` tag a command class declares as the default of its `type` field."""
    field = command.model_fields.get("type")
    if field is None or not isinstance(field.default, str):
        raise TypeError(f"{command.__name__} needs a `type: Literal[...]` field with a default")
    return field.default


def rule(
    command: type[C], *, roles: frozenset[Role]
) -> Callable[[Callable[[Emitter, C], None]], Callable[[Emitter, C], None]]:
    """Register the decorated function as the rule for `command`, issued by `roles`."""

    def register(decide: Callable[[Emitter, C], None]) -> Callable[[Emitter, C], None]:
        if not roles:
            raise TypeError(f"{command.__name__} needs at least one role that may issue it")
        kind = command_type(command)
        existing = _REGISTRY.get(kind)
        if existing is not None:
            raise TypeError(
                f"{kind} already has a rule ({existing.decide.__module__}."
                f"{existing.decide.__qualname__}): a command has exactly one"
            )
        _REGISTRY[kind] = Rule(command, frozenset(roles), decide)
        return decide

    return register


def registered() -> tuple[Rule, ...]:
    """Every rule, in registration order (the order of the `Command` union)."""
    return tuple(_REGISTRY.values())


def rule_for(kind: str) -> Rule:
    """The rule of a command type; `KeyError` for a type no rule was registered for."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no rule is registered for command type {kind!r}") from None
