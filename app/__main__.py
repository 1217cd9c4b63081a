"""Operator CLI: `python -m app <command>`. Commands that report print one JSON object with
`--format json`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from app.core.config import get_settings

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "format", "text") == "json":
        print(json.dumps(data, ensure_ascii=False, default=str))
    else:
        print(text)


def fail(args: argparse.Namespace, code: str, message: str) -> int:
    if getattr(args, "format", "text") == "json":
        print(json.dumps({"error": code, "message": message}, ensure_ascii=False))
    else:
        print(f"error: {message} ({code})", file=sys.stderr)
    return 1


def run_in_session(work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `work(session)` in one committed transaction on the configured database."""
    from app.core.db import dispose_engine, session_factory
    from app.main import import_models

    import_models()

    async def main() -> Any:
        try:
            async with session_factory()() as session, session.begin():
                return await work(session)
        finally:
            await dispose_engine()

    return asyncio.run(main())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.core import listeners

    settings = get_settings()
    host, port = args.host or settings.host, args.port or settings.port
    options: dict[str, Any] = {
        "factory": True,
        "proxy_headers": True,
        "log_config": None,
        "access_log": False,
    }
    config = uvicorn.Config("app.main:create_app", host=host, port=port, **options)
    # With several processes, a listening socket per process (app.core.listeners).
    reuse_port = args.workers > 1 and listeners.REUSE_PORT
    addresses = [(host, port)]
    if settings.internal_port is not None:
        # A second listener for /internal/ (one app, one lifespan, one worker): the app tells
        # the two apart by the local port (app.core.internal.ListenerSplitMiddleware).
        addresses.append((settings.internal_host, settings.internal_port))
    sockets = []
    for address in addresses:
        try:
            sockets.append(listeners.bind(*address, reuse_port=reuse_port))
        except OSError as exc:
            return fail(args, "serve.cannot_listen", f"cannot listen on {address}: {exc}")
    if args.workers > 1:
        from uvicorn.supervisors import Multiprocess

        config.workers = args.workers
        Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import signal

    from app.core import heap
    from app.core.db import dispose_engine, session_factory
    from app.core.jobs import Worker, load_job_modules
    from app.core.logging import configure_logging
    from app.main import import_models

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.worker_niceness:
        os.nice(settings.worker_niceness)  # inherited by OpenCV's threads
    import_models()
    load_job_modules()
    heap.settle()

    async def main() -> None:
        worker = Worker(
            session_factory(), lease_seconds=args.lease_seconds, poll_interval=args.poll_interval
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        try:
            if args.once:
                while await worker.run_once():
                    pass
            else:
                await worker.run_forever()
        finally:
            await dispose_engine()

    asyncio.run(main())
    return 0


def migrate_to_head(url: str | None = None) -> None:
    from alembic import command
    from alembic.config import Config

    from app.core.config import PROJECT_ROOT

    if (url or get_settings().database_url).startswith("sqlite"):
        from app.core.config import VAR_DIR

        VAR_DIR.mkdir(parents=True, exist_ok=True)
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    if url:
        config.attributes["url"] = url
    command.upgrade(config, "head")


def cmd_migrate(args: argparse.Namespace) -> int:
    migrate_to_head()
    emit(args, {"migrated": True}, "database migrated to head")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from app.seed import seed_demo

    created, accounts = run_in_session(seed_demo)
    rows = [a.__dict__ for a in accounts]
    lines = [
        "Demo accounts (role, phone, password, ward, name):"
        if created
        else "Demo data already seeded; accounts:"
    ]
    lines += [
        f"  {a.role:<11} {a.phone}  {a.password}  {a.ward_code or '(city)'}  {a.name}"
        for a in accounts
    ]
    emit(args, {"created": created, "accounts": rows}, "\n".join(lines))
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    from app.core.errors import AppError
    from app.identity import service

    async def work(session: Any) -> Any:
        return await service.create_user(
            session,
            phone_raw=args.phone,
            password=args.password,
            full_name=args.name,
            role=args.role,
            ward_code=args.ward,
        )

    try:
        user = run_in_session(work)
    except AppError as exc:
        return fail(args, exc.error.code, exc.error.message("en", exc.params))
    data = {
        "id": str(user.id),
        "phone": user.phone,
        "full_name": user.full_name,
        "role": user.role,
        "ward_code": user.ward_code,
    }
    emit(args, data, f"created {user.role} {user.phone} ({user.id})")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from app.tokens import keys

    row = run_in_session(lambda session: keys.rotate(session, args.alg))
    signs_from = row.created_at + timedelta(seconds=keys.KEY_PUBLISH_SECONDS)
    emit(
        args,
        {"kid": row.kid, "alg": row.alg, "published_at": row.created_at, "signs_from": signs_from},
        f"new {row.alg} signing key {row.kid}: published now, signs from {signs_from}",
    )
    return 0


def cmd_clients_create(args: argparse.Namespace) -> int:
    from app.core.errors import AppError
    from app.oauth import clients

    try:
        jwks = clients.load_jwks_file(args.jwks_file) if args.jwks_file else None
    except (OSError, ValueError) as exc:
        return fail(args, "oauth.client_invalid", f"cannot read --jwks-file: {exc}")

    async def work(session: Any) -> Any:
        return await clients.create_client(
            session,
            name=args.name,
            redirect_uris=args.redirect_uri or [],
            client_type=args.type,
            auth_method=args.auth_method,
            scope=args.scope,
            jwks=jwks,
            jwks_uri=args.jwks_uri,
            min_loa=args.min_loa,
            backchannel_logout_uri=args.backchannel_logout_uri,
            post_logout_redirect_uris=args.post_logout_redirect_uri or [],
            grant_types=args.grant_type or None,
            first_party=args.first_party,
            allow_cccd=args.allow_cccd,
            require_par=args.require_par,
            require_dpop=args.require_dpop,
            id_token_alg=args.id_token_alg,
            sector_identifier_uri=args.sector_identifier_uri,
        )

    try:
        created = run_in_session(work)
    except AppError as exc:
        return fail(args, exc.error.code, exc.error.message("en", exc.params))
    client = created.client
    data = {
        "client_id": client.id,
        "client_secret": created.client_secret,
        "name": client.name,
        "type": client.client_type,
        "auth_method": client.auth_method,
        "scope": client.scope,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "min_loa": client.min_loa,
    }
    text = f"created client {client.id} ({client.name})"
    if created.client_secret:
        text += f"\nclient_secret (shown once): {created.client_secret}"
    emit(args, data, text)
    return 0


def _client_json(client: Any) -> dict[str, Any]:
    from app.oauth.clients import describe

    return describe(client)


def _client_change(
    args: argparse.Namespace, work: Callable[[Any], Awaitable[Any]], text: Callable[[Any], str]
) -> int:
    """Run one change to a client and print the client (or the error) as the others do."""
    from app.core.errors import AppError

    try:
        result = run_in_session(work)
    except AppError as exc:
        return fail(args, exc.error.code, exc.error.message("en", exc.params))
    emit(args, _client_json(result), text(result))
    return 0


def cmd_clients_update(args: argparse.Namespace) -> int:
    from app.oauth import clients

    changes: dict[str, Any] = {
        "name": args.name,
        "redirect_uris": args.redirect_uri,
        "scope": args.scope,
        "post_logout_redirect_uris": args.post_logout_redirect_uri,
        "min_loa": args.min_loa,
    }
    if args.backchannel_logout_uri is not None or args.no_backchannel_logout:
        changes["backchannel_logout_uri"] = (
            None if args.no_backchannel_logout else args.backchannel_logout_uri
        )
    if args.jwks_uri is not None:
        changes["jwks_uri"] = args.jwks_uri
    if args.jwks_file is not None:
        try:
            changes["jwks"] = clients.load_jwks_file(args.jwks_file)
        except (OSError, ValueError) as exc:
            return fail(args, "oauth.client_invalid", f"cannot read --jwks-file: {exc}")
    return _client_change(
        args,
        lambda session: clients.update_client(session, args.client_id, **changes),
        lambda client: f"updated client {client.id} ({client.name})",
    )


def cmd_clients_status(status: str) -> Command:
    def command(args: argparse.Namespace) -> int:
        from app.oauth import clients

        return _client_change(
            args,
            lambda session: clients.set_client_status(
                session, args.client_id, status, reason=args.reason
            ),
            lambda client: f"client {client.id} is now {client.status}",
        )

    return command


def cmd_clients_show(args: argparse.Namespace) -> int:
    from app.oauth import clients

    return _client_change(
        args,
        lambda session: clients.find_client(session, args.client_id),
        lambda client: f"{client.id} {client.name} ({client.status})",
    )


def cmd_clients_rotate_secret(args: argparse.Namespace) -> int:
    from app.core.errors import AppError
    from app.oauth import clients

    try:
        rotated = run_in_session(lambda session: clients.rotate_secret(session, args.client_id))
    except AppError as exc:
        return fail(args, exc.error.code, exc.error.message("en", exc.params))
    emit(
        args,
        {"client_id": rotated.client.id, "client_secret": rotated.client_secret},
        f"new client_secret for {rotated.client.id} (shown once; the previous one no longer "
        f"works): {rotated.client_secret}",
    )
    return 0


def cmd_cameras_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.cameras import service
    from app.cameras.schemas import CameraCreate, CameraOut
    from app.core.errors import AppError

    try:
        data = CameraCreate(
            code=args.code,
            name=args.name,
            lat=args.lat,
            lon=args.lon,
            ward_code=args.ward,
            direction=args.direction,
            status="disabled" if args.disabled else "active",
        )
    except ValidationError as exc:
        return fail(
            args,
            "request.validation_failed",
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
        )
    try:
        camera = run_in_session(lambda session: service.create_camera(session, data))
    except AppError as exc:
        return fail(args, exc.error.code, exc.error.message("en", exc.params))
    out = CameraOut.model_validate(camera).model_dump(mode="json")
    emit(args, out, f"created camera {camera.code} ({camera.id}) in {camera.ward_code}")
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from app.contracts import write_contracts

    written = write_contracts()
    emit(args, {"written": [str(p) for p in written]}, "\n".join(f"wrote {p}" for p in written))
    return 0


def cmd_settings_doc(args: argparse.Namespace) -> int:
    from app.core.config import SETTINGS_DOC, settings_reference
    from app.main import settings_classes

    SETTINGS_DOC.write_text(settings_reference(settings_classes()), encoding="utf-8")
    emit(args, {"written": [str(SETTINGS_DOC)]}, f"wrote {SETTINGS_DOC}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_text: str, parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text)
        p.add_argument("--format", choices=["text", "json"], default="text")
        p.set_defaults(func=func)
        return p

    serve = add("serve", cmd_serve, "serve the API (and the in-process worker)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    worker = add("worker", cmd_worker, "run background jobs")
    worker.add_argument("--once", action="store_true", help="drain due jobs, then exit")
    worker.add_argument("--lease-seconds", type=int)
    worker.add_argument("--poll-interval", type=float)
    add("migrate", cmd_migrate, "migrate the database to the latest revision")
    add("seed-demo", cmd_seed_demo, "seed demo wards and staff (once)")
    add("openapi", cmd_openapi, "write openapi/openapi.json and mobile_contracts/errors.json")
    add("settings-doc", cmd_settings_doc, "write docs/settings.md from the settings classes")

    users = sub.add_parser("users", help="manage accounts").add_subparsers(
        dest="sub", required=True
    )
    create = add("create", cmd_users_create, "create an account", users)
    create.add_argument("--phone", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--name", required=True)
    create.add_argument(
        "--role",
        required=True,
        choices=["citizen", "community_helper", "ward_staff", "ward_admin", "city_admin"],
    )
    create.add_argument("--ward")

    cameras = sub.add_parser("cameras", help="camera registry").add_subparsers(
        dest="sub", required=True
    )
    camera = add("create", cmd_cameras_create, "register a camera", cameras)
    camera.add_argument("--code", required=True, help="the id senders use in alerts")
    camera.add_argument("--name", required=True)
    camera.add_argument("--lat", type=float, required=True)
    camera.add_argument("--lon", type=float, required=True)
    camera.add_argument("--ward", required=True, help="ward code, e.g. TNG-PDP")
    camera.add_argument("--direction")
    camera.add_argument("--disabled", action="store_true", help="register it disabled")

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="sub", required=True)
    rotate = add(
        "rotate",
        cmd_keys_rotate,
        "add the next signing key (published first, signs 10 minutes later)",
        keys,
    )
    rotate.add_argument("--alg", choices=["ES256", "RS256"], default="ES256")
    oauth_clients = sub.add_parser("clients", help="OpenID Connect partner applications")
    client_cmds = oauth_clients.add_subparsers(dest="sub", required=True)
    cc = add("create", cmd_clients_create, "register a partner application", client_cmds)
    cc.add_argument("--name", required=True)
    cc.add_argument("--redirect-uri", action="append")
    cc.add_argument("--post-logout-redirect-uri", action="append")
    cc.add_argument("--type", required=True, choices=["public", "confidential"])
    cc.add_argument(
        "--auth-method",
        required=True,
        choices=["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
    )
    cc.add_argument("--jwks-uri")
    cc.add_argument("--jwks-file")
    cc.add_argument("--scope", default="openid profile phone")
    cc.add_argument("--min-loa", type=int, default=0)
    cc.add_argument("--backchannel-logout-uri")
    cc.add_argument(
        "--sector-identifier-uri",
        help="https JSON array of every redirect URI: share pairwise subjects",
    )
    cc.add_argument(
        "--grant-type",
        action="append",
        choices=["authorization_code", "refresh_token", "client_credentials"],
    )
    cc.add_argument("--first-party", action="store_true", help="public sub, no consent page")
    cc.add_argument("--allow-cccd", action="store_true", help="may receive the cccd claim")
    cc.add_argument("--require-par", action="store_true")
    cc.add_argument("--require-dpop", action="store_true")
    cc.add_argument("--id-token-alg", choices=["RS256", "ES256"], default="RS256")
    cu = add(
        "update",
        cmd_clients_update,
        "change a partner application (settings not given stay as they are)",
        client_cmds,
    )
    cu.add_argument("client_id")
    cu.add_argument("--name")
    cu.add_argument(
        "--redirect-uri", action="append", help="replaces the registered list (repeat for several)"
    )
    cu.add_argument("--post-logout-redirect-uri", action="append")
    cu.add_argument("--scope")
    cu.add_argument("--min-loa", type=int)
    bcl = cu.add_mutually_exclusive_group()
    bcl.add_argument("--backchannel-logout-uri")
    bcl.add_argument("--no-backchannel-logout", action="store_true")
    keys_source = cu.add_mutually_exclusive_group()
    keys_source.add_argument("--jwks-uri")
    keys_source.add_argument("--jwks-file")
    for name, status, help_text in (
        ("disable", "disabled", "disable a partner application (invalid_client, tokens inactive)"),
        ("enable", "active", "enable a disabled partner application again"),
    ):
        change = add(name, cmd_clients_status(status), help_text, client_cmds)
        change.add_argument("client_id")
        change.add_argument("--reason")
    show = add("show", cmd_clients_show, "show a partner application", client_cmds)
    show.add_argument("client_id")
    rs = add(
        "rotate-secret",
        cmd_clients_rotate_secret,
        "replace the client secret (printed once)",
        client_cmds,
    )
    rs.add_argument("client_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from app.main import settings_classes

    args = build_parser().parse_args(argv)
    try:
        get_settings()
        for settings_class in settings_classes():  # every domain's too, not at first use
            settings_class()
    except ValidationError as exc:
        # One line naming each refused setting (production refuses development-only values).
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        return fail(args, "settings.invalid", reasons)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
