"""The HTTP contract, read off the app's routes without any server.

The API's response bodies are its own (or the domain's record), so a changed workflow
message or audit report cannot change what clients receive; and its command endpoints
are exactly the commands the domain registers rules for.
"""

from __future__ import annotations

import typing
from typing import Any
from unittest.mock import MagicMock

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from api.app import ApiResources, create_app
from domain import Command
from domain.roles import allowed_roles
from domain.rules import registered
from testing.payload_keys import TEST_CONVERTER

OWNERS = ("api.", "domain.")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # Building the app connects to nothing; the routes are all these tests read. The
    # client's converter seals, so the codec endpoints are among them.
    resources = ApiResources(
        temporal=MagicMock(data_converter=TEST_CONVERTER),
        store=MagicMock(),
        programs=MagicMock(),
        task_queue="unused",
    )
    return create_app(resources)


def _routes(app: FastAPI) -> list[APIRoute]:
    """Every API route, those of the included routers too, as it was declared."""
    return [
        context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def _models(annotation: Any) -> typing.Iterator[type[BaseModel]]:
    """The model classes an annotation names, however deeply nested in generics."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def _foreign_models(model: type[BaseModel]) -> list[str]:
    """Every model reachable from `model`'s fields that is defined outside api/ and domain/."""
    foreign: list[str] = []
    seen: set[type[BaseModel]] = set()
    pending = [model]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if not current.__module__.startswith(OWNERS):
            foreign.append(f"{current.__module__}.{current.__qualname__}")
        for field in current.model_fields.values():
            pending.extend(_models(field.annotation))
    return foreign


class TestResponseBodies:
    def test_every_response_model_is_defined_in_the_api_or_the_domain(self, app: FastAPI) -> None:
        foreign = {
            f"{','.join(sorted(route.methods))} {route.path}": names
            for route in _routes(app)
            if route.response_model is not None and (names := _foreign_models(route.response_model))
        }
        assert not foreign, "define the response body in api/ and convert at the route"

    def test_the_check_finds_a_model_defined_elsewhere(self) -> None:
        from workflows.messages import DeadlinesView

        class Wrapper(BaseModel):
            views: list[DeadlinesView] | None

        assert {
            "workflows.messages.DeadlinesView",
            "workflows.messages.PendingDeadline",
        } <= set(_foreign_models(Wrapper))


class TestCommandEndpoints:
    def test_registry_union_roles_and_routes_list_the_same_commands(self, app: FastAPI) -> None:
        kinds = [entry.kind for entry in registered()]
        (union,) = typing.get_args(Command)[:1]
        union_kinds = [member.model_fields["type"].default for member in typing.get_args(union)]
        posted = [
            route.operation_id
            for route in _routes(app)
            if route.path.startswith("/episodes/{episode_id}/") and "POST" in route.methods
        ]

        assert union_kinds == kinds
        assert all(allowed_roles(kind) for kind in kinds)
        # Every registered command is posted under its episode, but for the referral
        # (POST /episodes opens the episode) and the tick (the workflow's own timer).
        assert posted == [kind for kind in kinds if kind not in {"refer_client", "tick"}]
        assert any(r.path == "/episodes" and "POST" in r.methods for r in _routes(app))

    def test_each_route_is_at_its_declared_path_and_names_its_roles(self, app: FastAPI) -> None:
        by_kind = {route.operation_id: route for route in _routes(app)}
        for entry in registered():
            if (endpoint := entry.command.endpoint) is None:
                continue
            route = by_kind[entry.kind]
            assert route.path == "/episodes/{episode_id}" + endpoint.path
            roles = " or ".join(sorted(role.value for role in entry.roles))
            assert f"Roles: {roles}." in (route.description or "")
