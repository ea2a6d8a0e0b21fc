"""The operator dashboard at `/`: server-rendered (Jinja2) from the same snapshot the stream
sends, then kept live by static/dashboard.js over GET /api/v1/stream. No build step, no CDN:
everything it uses ships in templates/ and static/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from godel.api.auth import OPEN, authenticator, forbidden
from godel.api.deps import api_state
from godel.api.session import COOKIE, clear_cookie
from godel.api.stream import Snapshots, snapshots
from godel.credentials import Scope, format_scopes

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"

router = APIRouter(tags=["dashboard"])
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
templates = Jinja2Templates(directory=TEMPLATES_DIR)


def fmt_time(ts: float | None) -> str:
    if not ts:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def fmt_ago(ts: float | None) -> str:
    if not ts:
        return "—"
    seconds = max(0, int(time.time() - ts))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def fmt_bytes(n: float | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def fmt_num(n: float | None) -> str:
    return "—" if n is None else f"{int(n):,}"


def fmt_duration(seconds: float | None) -> str:
    """`45s`, `19m 57s`, `3h 2m`, `2d 3h`: as the CLI says them."""
    total = int(seconds or 0)
    units = [(total // 86400, "d"), (total % 86400 // 3600, "h"), (total % 3600 // 60, "m")]
    units.append((total % 60, "s"))
    first = next((i for i, (n, _) in enumerate(units) if n), len(units) - 1)
    return " ".join(f"{n}{unit}" for n, unit in units[first : first + 2] if n) or "0s"


templates.env.filters.update(
    ts=fmt_time, ago=fmt_ago, bytes=fmt_bytes, num=fmt_num, duration=fmt_duration
)


def overall(snap: dict[str, Any]) -> str:
    """The page's colour: `down` (red) when the link is not connected or a problem is
    that grave, `warn` (amber) for any other problem, else `ok`. The page adds `stale`
    (grey) itself when its stream to the API is lost."""
    levels = {a["level"] for a in snap.get("attention") or []}
    if snap["link"]["state"] != "connected" or "down" in levels:
        return "down"
    return "warn" if levels else "ok"


def view(snap: dict[str, Any]) -> dict[str, Any]:
    """The numbers the page shows, derived once so template and JS agree on meaning."""
    queues = snap.get("queues") or {}
    dead_ledger = (snap.get("events") or {}).get("dead", 0)
    memory = snap["redis_memory"]
    return {
        "down": snap["link"]["state"] != "connected",
        "queues": queues,
        "dead_total": sum((queues.get("dead") or {}).values()) if queues else dead_ledger,
        "memory_pct": round(memory["ratio"] * 100, 1) if memory["ratio"] is not None else None,
        "to_fallback": int(snap["stats"]["transitions"].get("fallback", 0)),
        "overall": overall(snap),
        "workers_alive": (snap.get("fleet") or {}).get("alive", len(snap["workers"])),
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(request: Request, snaps: Snapshots = Depends(snapshots)) -> Response:
    """The page, for a session cookie or a bearer key with the read scope (scripted
    checks); without a credential, a redirect to the sign-in page."""
    auth = authenticator(request)
    who = OPEN if auth.open else await auth.authenticate(request)
    if who is None:
        redirect = RedirectResponse("/login", status_code=303)
        if COOKIE in request.cookies:  # expired, or its key revoked
            clear_cookie(redirect, request)
        return redirect
    if not who.can(Scope.READ):
        raise forbidden(f"key {who.name!r} lacks the read scope the dashboard needs")
    snap = await snaps.get(max_age_s=1.0)
    context = {
        "s": snap,
        "v": view(snap),
        "who": who,
        "who_scopes": format_scopes(who.scopes),
        "is_admin": who.can(Scope.ADMIN),
        "open_mode": auth.open,
        "runbook": api_state(request.app).settings.runbook_base_url,
    }
    return templates.TemplateResponse(request, "dashboard.html", context)
