"""The public nearby feed: verified incidents still on the road, nearest first then newest.

The hot read of the app, so it is shaped for one round trip and little Python per request: one
statement ranks the page from the partial covering index alone (grid cells, bounding box,
equirectangular squared distance), then joins the page's rows, their public media links and
what media says of those files (processed? which public versions?). It is built once per shape
(which filters, how many cells), with bound parameters, and runs as a `Direct` statement on a
held connection: no session, no pool checkout or ping, no BEGIN/COMMIT, no ORM objects.

The distance used to order is plain arithmetic with the cosine computed in Python, so SQLite and
PostgreSQL compute the same value and the keyset cursor `(d², created_at, id)` is exact. Shown
distances are haversine.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.db import Direct
from app.core.errors import AppError
from app.core.tables import table_of
from app.incidents import errors, geo, renditions
from app.incidents.config import get_incident_settings
from app.incidents.models import FEED_PREDICATE, PUBLIC_FIELDS, Incident, IncidentMedia
from app.incidents.service import decode_cursor, encode_cursor
from app.media import public as media_public

_INCIDENTS = table_of(Incident)
_LINKS = table_of(IncidentMedia)


@lru_cache(maxsize=512)
def _direct(cells: int, with_category: bool, with_cursor: bool) -> Direct:
    return Direct(_statement(cells, with_category, with_cursor))


@lru_cache(maxsize=512)
def _statement(cells: int, with_category: bool, with_cursor: bool) -> sa.Select[Any]:
    """The page query for one shape: `cells` grid cells (`cell_0`...; 0: too many to list, the
    bounding box alone), with or without a category and a cursor. Built once."""
    t = _INCIDENTS
    lat, lon = sa.bindparam("lat", type_=sa.Float), sa.bindparam("lon", type_=sa.Float)
    d2 = (t.c.lat - lat) * (t.c.lat - lat) + (t.c.lon - lon) * (t.c.lon - lon) * sa.bindparam(
        "k", type_=sa.Float
    )
    ranked = sa.select(t.c.id, t.c.created_at, d2.label("d2")).where(
        sa.text(f"incidents.{FEED_PREDICATE}"),  # literal: both engines match the partial index
        t.c.lat.between(sa.bindparam("min_lat"), sa.bindparam("max_lat")),
        t.c.lon.between(sa.bindparam("min_lon"), sa.bindparam("max_lon")),
        d2 <= sa.bindparam("r2", type_=sa.Float),
    )
    if cells:
        ranked = ranked.where(
            t.c.cell.in_([sa.bindparam(f"cell_{i}", type_=sa.BigInteger) for i in range(cells)])
        )
    if with_category:
        ranked = ranked.where(t.c.category == sa.bindparam("category"))
    if with_cursor:
        ct = sa.bindparam("ct", type_=t.c.created_at.type)
        ci = sa.bindparam("ci", type_=t.c.id.type)
        cd = sa.bindparam("cd", type_=sa.Float)
        ranked = ranked.where(
            sa.or_(
                d2 > cd,
                sa.and_(
                    d2 == cd,
                    sa.or_(t.c.created_at < ct, sa.and_(t.c.created_at == ct, t.c.id < ci)),
                ),
            )
        )
    r = (
        ranked.order_by(d2, t.c.created_at.desc(), t.c.id.desc())
        .limit(sa.bindparam("n", type_=sa.Integer))
        .subquery("r")
    )
    m = _LINKS
    source: sa.FromClause = r.join(t, t.c.id == r.c.id).outerjoin(
        m, sa.and_(m.c.incident_id == r.c.id, m.c.visibility == "public")
    )
    source, media_columns = media_public.join_ready_versions(source, m.c.media_id)
    columns = [
        r.c.d2,
        t.c.reporter_display_name,
        m.c.media_id,
        *(t.c[name] for name in PUBLIC_FIELDS),
        *media_columns,
    ]
    return (
        sa.select(*columns)
        .select_from(source)
        .order_by(r.c.d2, r.c.created_at.desc(), r.c.id.desc(), m.c.position)
    )


async def nearby(
    session: AsyncSession | None,
    *,
    lat: float,
    lon: float,
    radius_m: float,
    limit: int,
    cursor: str | None,
    category: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of public summaries (with `distance_m`) and the cursor of the next page: on its
    own held connection (`Direct`), or in the caller's `session` when one is given."""
    settings = get_incident_settings()
    if radius_m > settings.incident_nearby_max_radius_m:
        raise AppError(
            errors.RADIUS_TOO_LARGE, params={"limit": int(settings.incident_nearby_max_radius_m)}
        )
    box = geo.bounding_box(lat, lon, radius_m)
    params: dict[str, Any] = {
        "lat": lat,
        "lon": lon,
        "k": geo.lon_scale(lat),
        "r2": (radius_m / geo.METRES_PER_DEGREE_LAT) ** 2,
        "min_lat": box[0],
        "max_lat": box[1],
        "min_lon": box[2],
        "max_lon": box[3],
        "n": limit + 1,
    }
    cells = geo.cells_covering(box, settings.incident_grid_degrees) or []
    params.update((f"cell_{i}", cell) for i, cell in enumerate(cells))
    if category is not None:
        params["category"] = category
    if cursor:
        c = decode_cursor(cursor, ("d", "t", "i"))
        params.update(cd=c["d"], ct=c["t"], ci=c["i"])
    shape = (len(cells), category is not None, bool(cursor))
    if session is None:
        rows = await _direct(*shape).fetch_all(params)
    else:
        rows = [row._mapping for row in await session.execute(_statement(*shape), params)]
    items, last = _group(rows, limit, lat, lon)
    next_cursor = None
    if last is not None:
        next_cursor = encode_cursor(
            {"d": last[0], "t": clock.as_utc(last[1]).isoformat(), "i": str(last[2])}
        )
    return items, next_cursor


def _group(
    rows: list[Any],
    limit: int,
    lat: float,
    lon: float,
) -> tuple[list[dict[str, Any]], tuple[float, Any, Any] | None]:
    """One item per incident (rows repeat per public media link and per version, in position
    order); the `limit + 1`-th incident only says there is a next page."""
    items: list[dict[str, Any]] = []
    by_id: dict[uuid.UUID, dict[str, Any]] = {}
    files: dict[uuid.UUID, list[Any]] = {}  # media id -> its rows, in the page's order
    more = False
    for row in rows:
        item = by_id.get(row["id"])
        if item is None:
            if len(items) == limit:
                more = True
                break
            item = {name: row[name] for name in PUBLIC_FIELDS}
            item["reporter"] = None if row["anonymous"] else row["reporter_display_name"]
            item["distance_m"] = round(geo.haversine_m(lat, lon, row["lat"], row["lon"]), 1)
            item["media"] = []
            by_id[row["id"]] = item
            items.append(item)
        if row["media_id"] is not None:
            if row["media_id"] not in files:
                files[row["media_id"]] = []
                item["media"].append(row["media_id"])
            files[row["media_id"]].append(row)
    sign = media_public.url_signer()
    for item in items:
        item["media"] = [
            view
            for media_id in item["media"]
            if (view := _public_view(media_id, files[media_id], sign)) is not None
        ]
    last = None
    if more:
        end = items[-1]
        last = (next(r["d2"] for r in rows if r["id"] == end["id"]), end["created_at"], end["id"])
    return items, last


def _public_view(
    media_id: uuid.UUID, rows: list[Any], sign: Callable[[uuid.UUID, str], str]
) -> dict[str, Any] | None:
    """The file as `renditions.render` shows it to the public, from plain rows (the statement
    joined only public links and processed files): nothing until the file is processed."""
    found = media_public.Ready.of(rows)
    if found is None:
        return None
    item = renditions.Item(
        media_id,
        "public",
        None,
        found.kind,
        "ready",
        found.error_code,
        found.width,
        found.height,
        found.duration_s,
        found.versions,
    )
    return renditions.render(item, renditions.PUBLIC, sign)
