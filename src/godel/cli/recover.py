"""`godel recover`: force the Redis recovery and show the replay of the backlog as it runs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from godel.cli.client import GodelClient

POLL_S = 0.25


def run_recovery(
    poller: GodelClient, poster: GodelClient, timeout_s: float, console: Console
) -> dict[str, Any]:
    """POST /admin/recovery/redis (the replay runs inside that request) while a progress
    bar follows the undispatched backlog on GET /health down to 0. Two clients: the POST
    holds one connection for as long as the replay takes."""
    poster.require_token()  # before anything else: no half-done work without the token
    total = int(poller.get("/health").get("undispatched") or 0)
    deadline = time.monotonic() + timeout_s
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with ThreadPoolExecutor(1) as pool, Progress(*columns, console=console) as progress:
        task = progress.add_task("replaying undispatched events into Redis", total=max(total, 1))

        def poll() -> dict[str, Any]:
            nonlocal total
            health: dict[str, Any] = poller.get("/health")
            left = int(health.get("undispatched") or 0)
            total = max(total, left, 1)
            progress.update(task, total=total, completed=total - left)
            return health

        future = pool.submit(poster.post, "/admin/recovery/redis", admin=True)
        while not wait([future], timeout=POLL_S).done:
            poll()
        result: dict[str, Any] = future.result()
        while result.get("error") is None and time.monotonic() < deadline:
            if result["remaining"] <= 0 and result["state"] == "connected":
                break
            time.sleep(POLL_S)
            health = poll()
            result["state"] = health.get("state", result["state"])
            result["remaining"] = int(health.get("undispatched") or 0)
        if result["remaining"] <= 0:
            progress.update(task, total=total, completed=total)
    return result
