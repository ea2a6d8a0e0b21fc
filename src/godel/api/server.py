"""uvicorn's Server, telling the app when shutdown begins.

uvicorn waits for open responses before it runs the lifespan shutdown, and tells no running
response; live streams would hold shutdown until the graceful timeout. This Server mirrors
`should_exit` into the API state's `exiting`, which streams check."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from godel.api.deps import api_state


class ApiServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        self._app = app
        self._should_exit = False
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value:
            api_state(self._app).exiting = True
