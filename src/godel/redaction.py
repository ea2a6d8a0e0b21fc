"""Passwords out of every URL and message Godel prints or serves. No dependencies: the CLI
imports it without loading the core."""

from __future__ import annotations

import re

REDACTED = "***"
_SECRET_PARAM = re.compile(r"([?&](?:password|passwd|pwd|secret|token)=)[^&#]*", re.IGNORECASE)
# A URL in prose: up to white space, less the punctuation that ends a clause.
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://\S+?(?=[.,;:)'"]*(?:\s|$))""")


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of `user:password@` is in `url`. It may contain `@` (the
    credentials end at the last `@` before the path); one containing an unencoded `/` is
    not a valid URL and is not recognised."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    path = url.find("/", start)
    authority = url[start:] if path < 0 else url[start:path]
    at = authority.rfind("@")
    colon = authority.find(":", 0, max(at, 0))
    if at < 0 or colon < 0:
        return None
    return start + colon + 1, start + at


def redact_url(url: str) -> str:
    """`url` with the password of `user:password@` and of `?password=` replaced by ***."""
    span = _password_span(url)
    if span is not None:
        url = f"{url[: span[0]]}{REDACTED}{url[span[1] :]}"
    return _SECRET_PARAM.sub(rf"\g<1>{REDACTED}", url)


def redact_text(text: str, url: str | None = None) -> str:
    """`redact_url` applied to every URL in a message (a driver's error, a config line).

    With the `url` the message is about: also what follows each `@` of its password. A
    driver that takes `user:pa@ss@host` for the host `ss@host` names that host in its
    errors."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    span = _password_span(url) if url else None
    if url and span:
        pieces = url[span[0] : span[1]].split("@")
        for i in range(1, len(pieces)):
            text = text.replace("@".join(pieces[i:]) + "@", f"{REDACTED}@")
    return text
