"""Settings from environment variables (and `.env`), with safe development defaults.

Core's settings; each domain has its own class in its `config.py` (`app.main.SETTINGS_CLASSES`
lists them all). The comments above each field are its documentation: docs/settings.md is
generated from them (`settings_reference`, `make settings-doc`), and `.env.example` names every
setting. In production the service refuses to start with the development secrets or with any
setting that is safe only on a developer's machine (an `http://` issuer, file sinks, internal
routes on the public listener); each refusal names the setting to change.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = PROJECT_ROOT / "var"

DEV_SECRET_KEY = "dev-only-secret-key-change-me-0123456789abcdef"  # noqa: S105
# 32 bytes, base64url: AES-256-GCM key for personal data at rest (development only).
DEV_PII_KEY = "ZGV2LW9ubHktcGlpLWtleS0zMi1ieXRlcy1sb25nISE="


class Settings(BaseSettings):
    """Core: the environment, the database, secrets, logs, the listeners, the worker (and, until
    their domain takes them, cameras')."""

    # hide_input_in_errors: a refused setting's error must not print the other settings' values
    # (secrets) into a start-up log.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # `production` refuses development-only values, each refusal naming the setting to change.
    environment: Literal["development", "production", "test"] = "development"
    # The address `serve` listens on.
    host: str = "127.0.0.1"
    # The port `serve` listens on.
    port: int = 8000
    # The externally visible base URL: the OpenID Connect issuer and every absolute link derive
    # from it. Default: http://HOST:PORT; https:// in production.
    public_base_url: str = ""
    # `sqlite+aiosqlite:///path` or `postgresql+asyncpg://user@host/db`.
    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR / 'app.db'}"
    # PostgreSQL pool size per process (overflow as much again).
    database_pool_size: int = 10
    # Ping each pooled connection before use (one round trip): a database restart costs no
    # request.
    database_pool_pre_ping: bool = True
    # Connections per process held open for the allow-listed hottest reads (app.core.db.Direct),
    # taken out of the pool. Default: 2 on PostgreSQL, 4 on SQLite (see db.direct_connections).
    database_direct_connections: int | None = None
    # Log SQL.
    database_echo: bool = False

    # Keyed hashes of OTP codes and refresh tokens, DPoP nonces; 32+ random characters in
    # production.
    secret_key: str = DEV_SECRET_KEY
    # 32 bytes, base64url: the AES-256-GCM key of CCCD numbers and signing keys at rest.
    pii_encryption_key: str = DEV_PII_KEY
    # HMAC key of the CCCD blind index (never change it once data exists). Default: derived from
    # SECRET_KEY.
    pii_blind_index_key: str = ""

    # The level of the structured logs on stdout; DEBUG is refused in production (database
    # drivers then log every query's parameters).
    log_level: str = "INFO"
    # `console` for humans.
    log_format: Literal["json", "console"] = "json"
    # Larger request bodies get 413 (uploads have their own limits).
    max_request_body_bytes: int = 1_048_576

    # Run the job worker inside `serve` (false when `python -m app worker` runs separately).
    run_worker_in_process: bool = True
    # An idle worker's poll interval.
    worker_poll_interval_seconds: float = 1.0
    # `python -m app worker` lowers its CPU priority by this much (0-19, as `nice`): on a host
    # shared with the API, a burst of picture processing must not slow the acknowledgements.
    worker_niceness: int = Field(default=10, ge=0, le=19)
    # Jobs a worker runs at once (each a task on its event loop; OpenCV work in threads).
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    # A claimed job whose worker died is retried after this.
    job_lease_seconds: int = 300
    # Attempts before a job is parked as dead.
    job_max_attempts: int = 8
    # Extra modules with job handlers (JSON list).
    job_modules: list[str] = Field(default_factory=list)
    # This worker enqueues the periodic housekeeping (safe on every worker: one job per slot).
    worker_schedules_periodic_jobs: bool = True
    # Finished jobs (their payloads may hold phone numbers) are deleted after this.
    job_retention_days: int = 7
    # Jobs parked as dead are deleted after this.
    dead_job_retention_days: int = 30

    # argon2id cost of every password and secret hash (app.core.security): passes, memory and
    # lanes; lower only in tests (the suite hashes hundreds of passwords). Production refuses
    # less than OWASP's minimum (2 passes, 19 MiB).
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 65536  # argon2id memory, KiB
    password_hash_parallelism: int = 2  # argon2id lanes
    # How long the audit log is kept (stated in erasure replies).
    audit_retention_days: int = 1825

    # Internal endpoints (/internal/...): camera webhooks and other machine-to-machine calls.
    # Must be false in production (the internal listener, INTERNAL_PORT, serves them there).
    internal_routes_on_public_listener: bool = True
    # A second listener of `serve` for /internal/... (and health, metrics) only: its address.
    internal_host: str = "127.0.0.1"
    # Its port; required in production, apart from PORT.
    internal_port: int | None = None
    # /docs, /redoc and /openapi.json on the public listener. Default: yes outside production; in
    # production only on the internal listener unless set to true (a published API reference).
    # /metrics is never public in production.
    api_docs_public: bool | None = None
    # Networks (CIDR, comma-separated or a JSON list) allowed to call /internal/...; others get
    # 403 `internal.network_forbidden`.
    internal_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ]
    )

    # Camera alerts (app/cameras): the Standard Webhooks `whsec_...` secrets of the alert
    # webhook, several (comma-separated) during a rotation; none: the webhook answers 503.
    camera_webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Largest alert snapshot in decoded JPEG bytes; keep MAX_REQUEST_BODY_BYTES above 4/3 of it.
    camera_snapshot_max_bytes: int = 524_288
    # Largest alert snapshot in pixels.
    camera_snapshot_max_pixels: int = 24_000_000
    # A camera silent this long is flagged offline to its ward.
    camera_offline_after_seconds: int = 900
    # How often silent cameras are looked for.
    camera_offline_check_interval_seconds: int = 300
    # Unblurred snapshots and plate texts are deleted after this (blurred copies stay).
    camera_original_retention_days: int = 30
    # Alert types that warn nearby citizens, with the confidence each needs (JSON).
    camera_warning_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"accident": 0.8, "flooding": 0.7, "fire": 0.8}
    )
    # "Nearby" a camera: its ~1 km grid cell and this many rings of neighbours.
    camera_warning_cell_rings: int = 1
    # At most one warning per place in this interval.
    camera_warning_interval_minutes: int = 30

    @field_validator("internal_allowed_networks", "camera_webhook_secrets", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """A JSON list, or values separated by commas or spaces (easier in a secret store)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part for part in re.split(r"[,\s]+", text) if part]
        return value

    @field_validator("camera_webhook_secrets")
    @classmethod
    def _check_secrets(cls, value: list[str]) -> list[str]:
        import base64
        import binascii

        for secret in value:
            try:
                text = secret.removeprefix("whsec_")
                key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if not secret.startswith("whsec_") or len(key) < 18:
                raise ValueError(
                    "each CAMERA_WEBHOOK_SECRETS entry must be whsec_ + base64 "
                    "of at least 18 random bytes"
                )
        return value

    @field_validator("internal_allowed_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        if not self.public_base_url:
            self.public_base_url = f"http://{self.host}:{self.port}"
        self.public_base_url = self.public_base_url.rstrip("/")
        if not self.pii_blind_index_key:
            self.pii_blind_index_key = self.secret_key + ":blind-index"
        if self.api_docs_public is None:
            self.api_docs_public = self.environment != "production"
        if self.environment == "production":
            self._refuse_unsafe_production_settings()
        return self

    def _refuse_unsafe_production_settings(self) -> None:
        """Each message names the setting to change: the operator reads it in the start-up error."""
        if not self.public_base_url.startswith("https://"):
            raise ValueError(
                "PUBLIC_BASE_URL must be an https:// URL in production (it is the "
                "OpenID Connect issuer; cookies are Secure only over https)"
            )
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            raise ValueError("SECRET_KEY must be set to a random value of 32+ characters")
        if self.pii_encryption_key == DEV_PII_KEY:
            raise ValueError("PII_ENCRYPTION_KEY must be set in production")
        if self.password_hash_memory_kib < 19456 or self.password_hash_time_cost < 2:
            raise ValueError("argon2 cost below OWASP's minimum (19 MiB, 2 passes)")
        if self.log_level.upper() == "DEBUG":
            raise ValueError(
                "LOG_LEVEL=DEBUG is for development only (database drivers then log "
                "every query's parameters: personal data, secrets)"
            )
        if self.internal_routes_on_public_listener:
            raise ValueError(
                "INTERNAL_ROUTES_ON_PUBLIC_LISTENER must be false in production "
                "(serve /internal/ on INTERNAL_PORT)"
            )
        if self.internal_port is None or self.internal_port == self.port:
            raise ValueError(
                "INTERNAL_PORT must be set in production, apart from PORT (internal "
                "routes and /metrics are served only there)"
            )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def issuer(self) -> str:
        return self.public_base_url


@lru_cache
def get_settings() -> Settings:
    return Settings()


# ---------------------------------------------------------------- the settings reference


SETTINGS_DOC = PROJECT_ROOT / "docs" / "settings.md"


def settings_reference(classes: list[type[BaseSettings]]) -> str:
    """docs/settings.md: each class's variables with their default and their documentation
    (`Field(description=...)`, else the comment lines right above the field and its own line's
    comment). The same classes always give the same text on any machine."""
    out = [
        "# Settings reference",
        "",
        "Generated from the settings classes by `make settings-doc` (`python -m app "
        "settings-doc`); `tests/test_documentation.py` fails when this page is not current. "
        "Each setting is an environment variable (or a line of `.env`; `.env.example` names "
        "them all). `python -m app` validates every class at start: in `ENVIRONMENT=production` "
        "it refuses development-only values, naming the setting to change.",
    ]
    for cls in classes:
        out += ["", f"## {cls.__name__} (`{_module_path(cls)}`)", ""]
        about = cls.__doc__ or (sys.modules[cls.__module__].__doc__ or "").split("\n\n")[0]
        if about:
            out += [" ".join(about.split()), ""]
        out += ["| Variable | Default | Description |", "|---|---|---|"]
        prefix = cls.model_config.get("env_prefix") or ""
        comments = _field_comments(cls)
        for name, field in cls.model_fields.items():
            text = field.description or comments.get(name, "")
            values = _choices(field.annotation)
            if values:
                text = f"{text} One of {values}.".strip()
            cells = [f"`{(prefix + name).upper()}`", _default(field), text]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


def _module_path(cls: type) -> str:
    return cls.__module__.replace(".", "/") + ".py"


def _default(field: Any) -> str:
    import json

    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str | Path | int | float):
        text = str(value)
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    # Paths under the project show relative to it: the page must not depend on the checkout.
    return "`" + text.replace(f"{PROJECT_ROOT}/", "") + "`"


def _choices(annotation: Any) -> str:
    from typing import get_args, get_origin

    if get_origin(annotation) is not Literal:
        return ""
    return ", ".join(f"`{value}`" for value in get_args(annotation))


def _field_comments(cls: type) -> dict[str, str]:
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, alone on its line)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and not token.string.startswith(("# noqa", "# type:")):
            row, column = token.start
            comments[row] = (token.string.lstrip("#").strip(), not lines[row - 1][:column].strip())
    found: dict[str, str] = {}
    klass = ast.parse(source).body[0]
    assert isinstance(klass, ast.ClassDef)
    for node in klass.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        row = node.lineno - 1
        while row in comments and comments[row][1]:
            above.insert(0, comments[row][0])
            row -= 1
        end = node.end_lineno or node.lineno
        own = [comments[r][0] for r in range(node.lineno, end + 1) if r in comments]
        found[node.target.id] = " ".join(above + [c for c in own if c])
    return found
