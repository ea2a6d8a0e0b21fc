"""A small HTTP client for the `godel` CLI: one place that turns transport failures and
error answers into a `ClientError` whose message is one line an operator can act on."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from godel.errors import GodelError

DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(GodelError):
    """The server could not be reached or answered with an error; `str()` is one line."""


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One server-sent event: its name and its decoded JSON data."""

    name: str
    data: Any


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text) or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return _one_line(str(body["detail"]))
    return _one_line(response.text)


class GodelClient:
    """Talks to one Godel API. Admin calls send `Authorization: Bearer <token>`."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def __enter__(self) -> GodelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def require_token(self) -> str:
        if not self.token:
            raise ClientError(
                "this command needs the admin token: pass --token or set GODEL_ADMIN_TOKEN"
            )
        return self.token

    def _headers(self, admin: bool) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.require_token()}"} if admin else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        admin: bool = False,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send one request; any failure becomes a one-line ClientError."""
        headers = self._headers(admin)
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, params=clean, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise ClientError(self._transport_message(exc)) from None
        self._raise_for_status(method, path, response)
        return response

    def get(self, path: str, *, admin: bool = False, **params: Any) -> Any:
        return self.request("GET", path, admin=admin, params=params).json()

    def post(self, path: str, body: Any = None, *, admin: bool = False, **params: Any) -> Any:
        return self.request("POST", path, admin=admin, params=params, json=body).json()

    def metrics_text(self) -> str:
        return self.request("GET", "/metrics").text

    def stream(self, path: str, **params: Any) -> Iterator[ServerEvent]:
        """Follow a text/event-stream until the server closes it (then ClientError)."""
        clean = {k: v for k, v in params.items() if v is not None}
        # Reads may pause between events; the server sends `status` every second or so,
        # so a minute of silence means the connection is dead.
        timeout = httpx.Timeout(10.0, read=60.0)
        try:
            with self._http.stream("GET", path, params=clean, timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    self._raise_for_status("GET", path, response)
                yield from parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ClientError(self._transport_message(exc)) from None
        raise ClientError(f"the server at {self.url} closed the event stream")

    def _transport_message(self, exc: httpx.HTTPError) -> str:
        hint = "is `godel serve` running there? (set --url or GODEL_URL)"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect to Godel at {self.url} ({_one_line(str(exc))}); {hint}"
        if isinstance(exc, httpx.TimeoutException):
            return f"Godel at {self.url} did not answer in time ({type(exc).__name__})"
        if isinstance(exc, httpx.RemoteProtocolError):
            return f"Godel at {self.url} closed the connection ({_one_line(str(exc))})"
        return f"request to Godel at {self.url} failed: {type(exc).__name__}: {_one_line(str(exc))}"

    def _raise_for_status(self, method: str, path: str, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = _detail(response)
        if status == 401:
            raise ClientError(f"the server wants the admin token (HTTP 401): {detail}")
        if status == 403:
            raise ClientError(
                f"the admin token was refused (HTTP 403): {detail}; check --token or "
                "GODEL_ADMIN_TOKEN"
            )
        raise ClientError(f"{method} {path} failed with HTTP {status}: {detail}")


def parse_sse(lines: Iterator[str]) -> Iterator[ServerEvent]:
    """Decode `event:`/`data:` blocks (a blank line ends one); comments are keep-alives."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield ServerEvent(name, _decode("\n".join(data)))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


def _decode(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
