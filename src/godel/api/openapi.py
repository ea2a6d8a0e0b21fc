"""The OpenAPI document as the API really behaves, and the docs page that shows it.

FastAPI's generated document is completed here: every error answer is an `ErrorBody`
(FastAPI would name its own validation shape, which Godel never sends), each operation
lists the statuses it can give (the limits' 408/413/422 and the catch-all 500 anywhere;
401/403 where a credential is needed; 415 where a body is taken; ...), the request bodies
of POST /api/v1/events, the Bearer scheme and the limits in force.

The docs page is Swagger UI from the `swagger-ui-bundle-v2` package, served by Godel under
/docs/assets (clusters are often offline, and the CSP allows no other origin), started by
a script file rather than an inline one (the CSP allows no inline script).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.routing import Route

from godel.api.errors import ErrorBody
from godel.api.events import Accepted, EventBatch, EventIn
from godel.api.limits import limits_summary
from godel.config import Settings

ASSETS = "/docs/assets"
INIT_SCRIPT = "/static/swagger-init.js"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
DESCRIPTIONS = {
    "400": "Malformed request (JSON, cursor, Last-Event-ID, since, Content-Length)",
    "401": "No credential, or one nobody knows (WWW-Authenticate: Bearer)",
    "403": "The credential lacks the scope",
    "404": "Not found",
    "408": "The body did not arrive within GODEL_BODY_TIMEOUT_S",
    "409": "An event id already names a different event",
    "413": "Body, payload or batch over its limit",
    "415": "The body is not declared application/json",
    "422": "Invalid input (also: NUL, depth, integers past 64 bits)",
    "429": "Over a rate limit (Retry-After)",
    "500": "Unexpected error; the server log has it under the request id",
    "503": "The ledger (or Redis, for Redis operations) is unavailable (Retry-After)",
}
EXTRA_STATUSES = {
    ("/api/v1/events", "post"): {"409", "429"},
    ("/admin/keys", "post"): {"409"},
    ("/login", "post"): {"401", "403"},  # open, but it checks the key it is given
    ("/logout", "post"): {"401", "403"},
}
# Successful answers that are not JSON.
NOT_JSON = {("/metrics", "get"): "text/plain"}
OPEN_PATHS = {"/health/live"}  # answers before anything can fail but the limits
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key (GODEL_API_KEYS or `godel keys create`) or GODEL_ADMIN_TOKEN.",
}

DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Godel API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS}/swagger-ui-bundle.js"></script>
  <script src="{INIT_SCRIPT}"></script>
</body>
</html>
"""


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    found = {"400", "408", "413", "422", "500"}
    if path not in OPEN_PATHS:
        found.add("503")
    if operation.get("security"):
        found |= {"401", "403"}
    names = {p.get("name") for p in operation.get("parameters", ()) if p.get("in") == "query"}
    if "{" in path or "id" in names:
        found.add("404")
    if "requestBody" in operation:
        found.add("415")
    return found | EXTRA_STATUSES.get((path, method), set())


def complete(doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Add what FastAPI cannot know (see the module docstring) to its document."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, EventIn, EventBatch, Accepted):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    doc["components"].setdefault("securitySchemes", {})
    if not doc["components"]["securitySchemes"]:
        doc["components"]["securitySchemes"]["bearer"] = BEARER_SCHEME
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation) | set(responses) - {"default"}:
                if status.startswith(("4", "5")):
                    responses[status] = {
                        "description": DESCRIPTIONS.get(status, "Error"),
                        "content": {"application/json": {"schema": ERROR_REF}},
                    }
            media = NOT_JSON.get((path, method))
            if media is not None:
                responses["200"]["content"] = {media: {"schema": {"type": "string"}}}
            operation["responses"] = dict(sorted(responses.items()))
    doc["info"]["x-limits"] = limits_summary(settings)
    return doc


def install(app: FastAPI, settings: Settings) -> None:
    """Serve /docs from the package's Swagger UI and the completed document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete(doc, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if app.docs_url:
        _replace_endpoint(app, app.docs_url, _docs_page)
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")


async def _docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)


def _replace_endpoint(app: FastAPI, path: str, endpoint: Callable[..., Any]) -> None:
    for index, route in enumerate(app.router.routes):
        if isinstance(route, Route) and route.path == path:
            app.router.routes[index] = Route(
                path, endpoint, methods=["GET", "HEAD"], include_in_schema=False
            )
