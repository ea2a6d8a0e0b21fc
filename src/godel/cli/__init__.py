"""The `godel` command (the console script is `godel.cli:main`), one module per job:
`main` the Typer app and the commands that run Godel (serve, worker, db, demo);
`operate` the operator's commands over HTTP (status, events, dead, recover, cache);
`client` the HTTP client; `render` what gets printed; `recover` the progress of
`godel recover`; `demo` the tour; `processes` redis-server and the demo's stack.
"""

from godel.cli.main import app, main

__all__ = ["app", "main"]
