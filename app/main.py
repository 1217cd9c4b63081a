"""Application factory: middleware, exception handlers, routers, lifespan."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic_settings import BaseSettings

from app.core import handlers, health, heap, jobs
from app.core.config import get_settings
from app.core.db import dispose_engine, session_factory
from app.core.internal import ListenerSplitMiddleware
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware
from app.core.routing import include_flat, router_lifespans, serve_first

# Each domain's router. Their routes are served from one flat table in this order (see
# app.core.routing); the order decides only between routes that could answer the same path, and
# HOT_ROUTES below are tried before all others. Importing a domain's router (here) or its tasks
# (in the worker) imports its modules, which subscribe at their end to the hooks of the layers
# below (identity's end of sessions, tokens' level changes, core.personal_data's export and
# erasure): that is where every subscription is made.
DOMAIN_ROUTERS = [
    "app.cameras.internal_router",
    "app.identity.router",
    "app.oauth.router",
    "app.admin_units.router",
    "app.media.router",
    "app.dossiers.router",
    "app.incidents.router",
    "app.incidents.open311",
    "app.media.signed_router",
    "app.cameras.router",
    "app.notifications.router",
    "app.media.tus_router",
]
# The most frequent requests, tried first (see app.core.routing.serve_first): probes, the app's
# profile read and token refresh, partner back ends' token and introspection calls, and the
# operations centre's camera alerts.
HOT_ROUTES = [
    ("GET", "/healthz"),
    ("GET", "/api/v1/me"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/introspect"),
    ("POST", "/internal/v1/camera-alerts"),
]
# Each domain's job handlers (registered with core below; imported by the worker).
DOMAIN_TASK_MODULES: list[str] = [
    "app.core.maintenance",
    "app.identity.tasks",
    "app.media.tasks",
    "app.cameras.tasks",
    "app.notifications.tasks",
    "app.oauth.tasks",
    "app.dossiers.tasks",
]
jobs.register_job_modules(DOMAIN_TASK_MODULES)
# Every module declaring tables, so Alembic and the tests see the whole schema.
MODEL_MODULES = [
    "app.core.jobs",
    "app.core.audit",
    "app.core.ratelimit",
    "app.admin_units.models",
    "app.identity.models",
    "app.tokens.models",
    "app.media.models",
    "app.dossiers.models",
    "app.incidents.models",
    "app.cameras.models",
    "app.notifications.models",
    "app.oauth.models",
]
# Every settings class, core's first: `python -m app` validates them all at start (production
# refuses unsafe values), and docs/settings.md is generated from them (`make settings-doc`).
SETTINGS_CLASSES = [
    "app.core.config:Settings",
    "app.identity.config:IdentitySettings",
    "app.tokens.config:TokenSettings",
    "app.oauth.config:OAuthSettings",
    "app.dossiers.config:DossierSettings",
    "app.incidents.config:IncidentSettings",
    "app.media.config:MediaSettings",
    "app.notifications.config:NotificationSettings",
]
# Coroutines `f(session)` run once at start-up in one transaction (reference data, ...).
DOMAIN_STARTUP_HOOKS = [
    "app.dossiers.service:sync_catalogue",
    "app.cameras.service:schedule_offline_check",
]


def settings_classes() -> list[type[BaseSettings]]:
    import importlib

    classes = []
    for path in SETTINGS_CLASSES:
        module, _, name = path.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


def import_models() -> None:
    import importlib

    for module in MODEL_MODULES:
        importlib.import_module(module)


async def run_startup_hooks() -> None:
    import importlib

    async with session_factory()() as session, session.begin():
        for hook in DOMAIN_STARTUP_HOOKS:
            module, _, name = hook.partition(":")
            await getattr(importlib.import_module(module), name)(session)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from app.core.jobs import Worker, load_job_modules
    from app.tokens.keys import key_store

    settings = get_settings()
    await key_store.ensure(session_factory())
    await run_startup_hooks()
    worker_task = None
    worker = None
    if settings.run_worker_in_process and app.state.run_worker:
        load_job_modules()
        worker = Worker(session_factory())
        worker_task = asyncio.create_task(worker.run_forever())
    heap.settle()
    try:
        async with app.state.router_lifespans(app):
            yield
    finally:
        if worker and worker_task:
            worker.stop()
            await worker_task
        await dispose_engine()


def _operation_id(route: APIRoute) -> str:
    """Stable operation ids: FastAPI's default picks one of a route's methods from a set, so a
    route serving GET and POST got a different id with each hash seed."""
    methods = "_".join(sorted(m.lower() for m in route.methods or ()))
    return re.sub(r"\W", "_", f"{route.name}{route.path_format}_{methods}")


def create_app(*, run_worker: bool = True) -> FastAPI:
    import importlib

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    import_models()
    app = FastAPI(
        title="C-ThaiNguyen API",
        version="1.0.0",
        summary="Thai Nguyen ID, public services, traffic incidents and notifications",
        description=(
            "Backend of the C-ThaiNguyen citizen super-app. Errors are RFC 9457 "
            "`application/problem+json` with a stable `code`; messages follow `Accept-Language` "
            "(vi by default, en)."
        ),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.run_worker = run_worker
    handlers.install(app)
    app.add_middleware(ListenerSplitMiddleware)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        body_limit_exempt=("/api/v1/media", "/api/v1/uploads"),
    )
    routers = [health.router, *(importlib.import_module(m).router for m in DOMAIN_ROUTERS)]
    for router in routers:
        include_flat(app, router)
    serve_first(app, HOT_ROUTES)
    app.state.router_lifespans = router_lifespans(routers)
    return app
