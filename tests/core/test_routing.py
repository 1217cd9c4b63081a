"""Domain routers served from one flat route table (app.core.routing)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.routing import APIRoute

from app.core import health
from app.core.routing import include_flat, router_lifespans
from app.main import DOMAIN_ROUTERS, create_app


def _domain_routers() -> list[APIRouter]:
    return [health.router, *(importlib.import_module(m).router for m in DOMAIN_ROUTERS)]


def test_the_flat_app_documents_exactly_what_nested_inclusion_would():
    flat = create_app(run_worker=False)
    # The same app (handlers, OpenAPI settings) with FastAPI's own nested inclusion instead.
    nested = create_app(run_worker=False)
    nested.router.routes[:] = [r for r in nested.router.routes if not isinstance(r, APIRoute)]
    for router in _domain_routers():
        nested.include_router(router)
    assert any(not isinstance(r, APIRoute) for r in nested.router.routes[-3:])

    def operations(app: FastAPI) -> dict:
        document = app.openapi()
        return {"paths": document["paths"], "components": document.get("components")}

    assert operations(flat) == operations(nested)


def _probe_app(parent: APIRouter) -> FastAPI:
    app = FastAPI(lifespan=router_lifespans([parent]))
    include_flat(app, parent)
    return app


async def _get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        return await client.get(path, headers=headers)


async def test_a_nested_route_keeps_the_prefix_and_dependencies_of_the_router_including_it():
    async def needs_key(request: Request) -> None:
        if request.headers.get("x-key") != "k":
            raise HTTPException(403)

    parent = APIRouter(prefix="/outer", dependencies=[Depends(needs_key)])
    child = APIRouter(prefix="/inner", tags=["child"])

    @child.get("/ping")
    async def ping() -> dict:
        return {"pong": True}

    parent.include_router(child)
    app = _probe_app(parent)

    assert (await _get(app, "/outer/inner/ping")).status_code == 403
    answer = await _get(app, "/outer/inner/ping", **{"x-key": "k"})
    assert answer.status_code == 200 and answer.json() == {"pong": True}
    assert (await _get(app, "/inner/ping", **{"x-key": "k"})).status_code == 404
    assert app.openapi()["paths"]["/outer/inner/ping"]["get"]["tags"] == ["child"]


async def test_routes_are_matched_in_declaration_order_and_wrong_methods_get_405():
    parent = APIRouter()
    first = APIRouter(prefix="/items")
    second = APIRouter(prefix="/items")

    @first.get("/special")
    async def special() -> str:
        return "first"

    @second.get("/{name}")
    async def any_item(name: str) -> str:
        return f"second:{name}"

    parent.include_router(first)
    parent.include_router(second)
    app = _probe_app(parent)

    assert (await _get(app, "/items/special")).json() == "first"
    assert (await _get(app, "/items/other")).json() == "second:other"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        assert (await client.delete("/items/special")).status_code == 405


def test_an_inclusion_with_arguments_of_its_own_is_refused_not_dropped():
    parent = APIRouter()
    child = APIRouter()

    @child.get("/x")
    async def x() -> None:
        return None

    parent.include_router(child, prefix="/extra")
    with pytest.raises(RuntimeError, match="prefix given to include_router"):
        _probe_app(parent)


async def test_router_lifespans_run_around_the_app():
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    router = APIRouter(lifespan=lifespan)
    app = FastAPI()
    async with router_lifespans([router])(app):
        assert events == ["start"]
    assert events == ["start", "stop"]


async def test_hot_routes_move_to_the_front_and_every_request_keeps_its_route():
    from app.core.routing import serve_first

    parent = APIRouter()

    @parent.get("/a/{name}")
    async def by_name(name: str) -> str:
        return f"named:{name}"

    @parent.get("/b/hot")
    async def hot() -> str:
        return "hot"

    @parent.post("/b/hot")
    async def hot_post() -> str:
        return "hot-post"

    app = _probe_app(parent)
    serve_first(app, [("GET", "/b/hot")])

    assert app.router.routes[0].path == "/b/hot" and "GET" in app.router.routes[0].methods
    assert (await _get(app, "/b/hot")).json() == "hot"
    assert (await _get(app, "/a/x")).json() == "named:x"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        assert (await client.post("/b/hot")).json() == "hot-post"


def test_a_hot_path_answered_by_a_route_with_parameters_is_refused():
    from app.core.routing import serve_first

    parent = APIRouter()

    @parent.get("/a/{name}")
    async def by_name(name: str) -> str:
        return name

    @parent.get("/a/hot")
    async def shadowed() -> str:
        return "never answered"

    app = _probe_app(parent)
    with pytest.raises(RuntimeError, match="not a literal route"):
        serve_first(app, [("GET", "/a/hot")])
    with pytest.raises(RuntimeError, match="no route answers"):
        serve_first(app, [("GET", "/nowhere")])


def test_the_app_tries_its_most_frequent_routes_first():
    from app.main import HOT_ROUTES

    app = create_app(run_worker=False)
    front = app.router.routes[: len(HOT_ROUTES)]
    answered = [
        (method in r.methods, r.path) for r, (method, _) in zip(front, HOT_ROUTES, strict=True)
    ]
    assert answered == [(True, path) for _, path in HOT_ROUTES]
