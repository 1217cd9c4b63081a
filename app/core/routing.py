"""Domain routers served from one flat route table.

`FastAPI.include_router` keeps an included router as a nested branch that is re-resolved on every
request (it re-checks, router by router, whether routes were added since) and matched twice, once
to choose and once to handle. Measured here: choosing `/api/v1/notifications` took 0.6 ms of CPU
before its endpoint ran, `/api/v1/me` 39 µs, and the cost grows with every route in front of a
path. Our routes are fixed once the app is built, so `include_flat` adds each domain route to the
app itself, as FastAPI did before nested inclusion: requests then meet one linear list of compiled
path patterns, and the OpenAPI document stays the same (a test compares it with the committed one).

What an inclusion adds to the routes of an included router (the including router's prefix, tags,
dependencies, responses and callbacks) is carried over; what else `include_router` could be given
is refused rather than silently dropped. Router lifespans are entered by `router_lifespans`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match

# The route attributes passed back to `add_api_route` as they are.
_COPIED = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name
    not in {
        "self",
        "path",
        "endpoint",
        "route_class_override",
        "tags",
        "dependencies",
        "responses",
        "callbacks",
    }
)


@dataclass(frozen=True)
class _Inherited:
    """What enclosing inclusions add to a route: FastAPI applies a router's own prefix, tags,
    dependencies... to the routes declared on it, but those of an including router only through
    the inclusion."""

    prefix: str = ""
    tags: tuple[Any, ...] = ()
    dependencies: tuple[Any, ...] = ()
    responses: dict[Any, Any] = field(default_factory=dict)
    callbacks: tuple[Any, ...] = ()

    def within(self, router: APIRouter) -> _Inherited:
        return _Inherited(
            prefix=self.prefix + router.prefix,
            tags=(*self.tags, *router.tags),
            dependencies=(*self.dependencies, *router.dependencies),
            responses={**self.responses, **router.responses},
            callbacks=(*self.callbacks, *router.callbacks),
        )


def include_flat(app: FastAPI, router: APIRouter) -> None:
    """Add every route of `router`, and of the routers it includes, to the app itself, in the
    order FastAPI would match them."""
    for route, inherited in _routes_in_order(router, _Inherited()):
        if not isinstance(route, APIRoute):
            if inherited != _Inherited():
                raise RuntimeError(f"cannot serve {route!r} flat under {inherited}")
            app.router.routes.append(route)
            continue
        app.router.add_api_route(
            inherited.prefix + route.path,
            route.endpoint,
            route_class_override=type(route),
            tags=[*inherited.tags, *(route.tags or [])],
            dependencies=[*inherited.dependencies, *route.dependencies],
            responses={**inherited.responses, **route.responses},
            callbacks=[*inherited.callbacks, *(route.callbacks or [])] or None,
            **{name: getattr(route, name) for name in _COPIED},
        )


def _routes_in_order(
    router: APIRouter, inherited: _Inherited
) -> Iterator[tuple[BaseRoute, _Inherited]]:
    for route in router.routes:
        nested = getattr(route, "original_router", None)  # an entry made by include_router
        if isinstance(route, APIRoute) or not isinstance(nested, APIRouter):
            yield route, inherited
            continue
        _check_plain_inclusion(route, router)
        yield from _routes_in_order(nested, inherited.within(router))


def _check_plain_inclusion(entry: Any, parent: APIRouter) -> None:
    """`include_router(sub)` with no arguments of its own: the inclusion then adds exactly the
    parent router's prefix, tags, dependencies, responses and callbacks (see `_Inherited`)."""
    context = getattr(entry, "include_context", None)
    expected = {
        "prefix": parent.prefix,
        "tags": list(parent.tags),
        "dependencies": list(parent.dependencies),
        "responses": dict(parent.responses),
        "callbacks": list(parent.callbacks),
    }
    if parent.deprecated or not parent.include_in_schema:
        raise RuntimeError("a router including others is neither deprecated nor hidden")
    for name, value in expected.items():
        if context is not None and getattr(context, name, value) != value:
            raise RuntimeError(
                f"{name} given to include_router: declare it on the included APIRouter "
                "(app.core.routing serves the routes from a flat table)"
            )


def router_lifespans(routers: list[APIRouter]) -> Any:
    """Enter each router's own lifespan (what FastAPI merges into the app's on include_router)."""

    @asynccontextmanager
    async def lifespans(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for router in routers:
                await stack.enter_async_context(router.lifespan_context(app))
            yield

    return lifespans


def serve_first(app: FastAPI, hot: list[tuple[str, str]]) -> None:
    """Move the routes of the most frequent requests (`(method, path)`, literal paths) to the
    front of the table: each request otherwise tries every route before its own, and the last
    ones cost 0.25 ms here. A route moves only if no route in front of it could answer its path
    and method, so every request is answered by the same route as before."""
    routes = app.router.routes
    for method, path in reversed(hot):
        index = next((i for i, r in enumerate(routes) if _answers(r, method, path)), None)
        if index is None:
            raise RuntimeError(f"no route answers {method} {path}")
        route = routes[index]
        if getattr(route, "path", None) != path:
            raise RuntimeError(f"{method} {path} is answered by {route!r}, not a literal route")
        routes.insert(0, routes.pop(index))


def _answers(route: BaseRoute, method: str, path: str) -> bool:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    match, _ = route.matches(scope)
    return match == Match.FULL
