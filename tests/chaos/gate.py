"""A plugin handler for chaos tests (GODEL_HANDLERS=tests.chaos.gate): an agent event whose
payload names a `gate` file waits while that file exists.

A worker held at the gate claims nothing more, and its ledger claims expire (nothing renews
them), so a test can freeze the ledger: no event is processed, and every one is claimable by
a replay. Each holding process leaves `held-<pid>` beside the gate, so the test knows when
every worker is held.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import godel
from godel import Event


@godel.handler("agent.*")
async def wait_at_gate(event: Event) -> None:
    gate = event.payload.get("gate")
    if not gate:
        return
    path = Path(str(gate))
    if path.is_file():
        (path.parent / f"held-{os.getpid()}").touch()
    while path.is_file():
        await asyncio.sleep(0.05)
