"""A small HTTP client for the `godel` CLI: one place that turns transport failures and
error answers into a `ClientError` whose message is one line an operator can act on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from godel.errors import GodelError

# Reconnecting a broken event stream: the first wait, doubled up to the last.
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 2.0


class ClientError(GodelError):
    """The server could not be reached or answered with an error; `str()` is one line.
    `status` is the HTTP status of an error answer, None when no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """Worth trying again: no answer (a restart, a dropped connection) or a 5xx."""
        return self.status is None or self.status >= 500


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One server-sent event: its name, its decoded JSON data and its `id:` (if any)."""

    name: str
    data: Any
    id: str | None = None


def normalize_url(url: str) -> str:
    """`localhost:8080` (curl's style) means `http://localhost:8080`."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


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


CREDENTIAL_HINT = "--token, GODEL_ADMIN_TOKEN or GODEL_API_KEY"


class GodelClient:
    """Talks to one Godel API. The credential (the admin token or an API key) goes with
    every request when there is one; admin calls refuse to start without one. `transport`
    replaces the network (tests)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.token = token or None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout_s, headers=headers, transport=transport
        )

    def __enter__(self) -> GodelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def require_token(self) -> str:
        if not self.token:
            raise ClientError(
                "this command needs a credential with the admin scope: pass --token or set "
                "GODEL_ADMIN_TOKEN (or GODEL_API_KEY)"
            )
        return self.token

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
        if admin:
            self.require_token()
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, params=clean, json=json)
        except httpx.HTTPError as exc:
            raise ClientError(self._transport_message(exc)) from None
        self._raise_for_status(method, path, response)
        return response

    def get(self, path: str, *, admin: bool = False, **params: Any) -> Any:
        return self.request("GET", path, admin=admin, params=params).json()

    def post(self, path: str, body: Any = None, *, admin: bool = False, **params: Any) -> Any:
        return self.request("POST", path, admin=admin, params=params, json=body).json()

    def stream(
        self, path: str, headers: Mapping[str, str] | None = None, **params: Any
    ) -> Iterator[ServerEvent]:
        """Follow a text/event-stream until the server closes it (then ClientError)."""
        clean = {k: v for k, v in params.items() if v is not None}
        # Reads may pause between events; the server sends `status` every second or so,
        # so a minute of silence means the connection is dead.
        timeout = httpx.Timeout(10.0, read=60.0)
        try:
            with self._http.stream(
                "GET", path, params=clean, headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    self._raise_for_status("GET", path, response)
                yield from parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ClientError(self._transport_message(exc)) from None
        raise ClientError(f"the server at {self.url} closed the event stream")

    def follow(
        self,
        path: str,
        *,
        cursor: int | None,
        retry_for_s: float,
        on_retry: Callable[[ClientError], None],
    ) -> Iterator[ServerEvent]:
        """`stream`, resumed when a stream that was up breaks (the API restarted): again
        after the last event seen (`cursor` and Last-Event-ID), for up to `retry_for_s`
        from the break. A first connection that fails, or an error answer retrying
        cannot fix (4xx), raises at once. `on_retry` hears of each break once."""
        up = False
        lost_at: float | None = None
        delay = RETRY_FIRST_S
        while True:
            headers = {"Last-Event-ID": str(cursor)} if cursor is not None else None
            try:
                for message in self.stream(path, headers=headers, cursor=cursor):
                    up, lost_at, delay = True, None, RETRY_FIRST_S
                    if message.id is not None and message.id.isdigit():
                        cursor = int(message.id)
                    yield message
            except ClientError as err:
                if not (up and err.transient):
                    raise
                just_lost = lost_at is None
                if lost_at is None:
                    lost_at = time.monotonic()
                left = retry_for_s - (time.monotonic() - lost_at)
                if left <= 0:
                    raise ClientError(
                        f"gave up reconnecting after {retry_for_s:g}s: {err}", err.status
                    ) from None
                if just_lost:
                    on_retry(err)
                time.sleep(min(delay, left))
                delay = min(delay * 2, RETRY_MAX_S)

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
        if status == 401 and self.token:
            raise ClientError(
                f"the credential was not accepted (HTTP 401): {detail}; check {CREDENTIAL_HINT}",
                status,
            )
        if status == 401:
            raise ClientError(
                f"the server wants a credential (HTTP 401): {detail}; pass {CREDENTIAL_HINT}",
                status,
            )
        if status == 403:
            raise ClientError(
                f"the credential lacks a scope this needs (HTTP 403): {detail}; use a key "
                "with that scope, or GODEL_ADMIN_TOKEN",
                status,
            )
        raise ClientError(f"{method} {path} failed with HTTP {status}: {detail}", status)


def parse_sse(lines: Iterator[str]) -> Iterator[ServerEvent]:
    """Decode `event:`/`data:`/`id:` blocks (a blank line ends one); comments are
    keep-alives. As in EventSource, the last id seen stays until another replaces it."""
    name, data, last_id = "message", list[str](), None
    for line in lines:
        if not line:
            if data:
                yield ServerEvent(name, _decode("\n".join(data)), last_id)
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
            elif field == "id":
                last_id = value


def _decode(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
