"""API credentials: scopes, keys from GODEL_API_KEYS, secrets and their digests.

Three scopes; `admin` implies the other two:

    publish   POST /api/v1/events
    read      every GET of events, agents and dead letters, the stream, the dashboard, /health
    admin     everything else under /admin, agent writes, key management

Secrets are stored and looked up by their SHA-256 digest, never as they are. A slow password
hash (bcrypt, scrypt, argon2) buys time against guessing *low-entropy* secrets from a stolen
table; the keys Godel makes are 32 random bytes, whose digest cannot be reversed by guessing
at any speed, and a slow hash would put ~50-100 ms of CPU in front of every request. Secrets
an operator writes into GODEL_API_KEYS never reach the database at all.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import SecretStr

# Prefix of the secrets Godel makes: tells a reader (and secret scanners) what it is, and
# lets the API skip the database for a token that cannot be a stored key.
SECRET_PREFIX = "gdl_"
SECRET_BYTES = 32
# Anchored for pydantic (whose `pattern` searches); Python code uses NAME_RE.fullmatch.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_RE = re.compile(NAME_PATTERN)
ADMIN_TOKEN_NAME = "admin"  # the principal GODEL_ADMIN_TOKEN authenticates as
SHORT_SECRET = 16  # characters; a shorter secret from the environment is warned about


class Scope(enum.StrEnum):
    """What a credential may do."""

    PUBLISH = "publish"  # POST /api/v1/events
    READ = "read"  # GETs of events, agents, dead letters; the stream, dashboard, /health
    ADMIN = "admin"  # /admin/* writes, agent writes, key management; implies the others


def grants(scopes: Iterable[Scope], needed: Scope) -> bool:
    held = set(scopes)
    return needed in held or Scope.ADMIN in held


def parse_scopes(text: str) -> frozenset[Scope]:
    """`publish+read` -> {PUBLISH, READ}; ValueError names an unknown scope."""
    found: set[Scope] = set()
    for part in text.split("+"):
        word = part.strip().lower()
        try:
            found.add(Scope(word))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {word!r} (scopes are {known})") from None
    return frozenset(found)


def format_scopes(scopes: Iterable[Scope]) -> str:
    """Scopes joined by `+`, in the enum's order (the form GODEL_API_KEYS and the table use)."""
    held = set(scopes)
    return "+".join(s.value for s in Scope if s in held)


def digest(secret: str) -> str:
    """The stored form of a secret: hex SHA-256 (see the module docstring for why not slow)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A fresh key secret: the prefix and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ValueError(
            "a key name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if name == ADMIN_TOKEN_NAME:
        raise ValueError(f"the name {ADMIN_TOKEN_NAME!r} is GODEL_ADMIN_TOKEN's")
    return name


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key of GODEL_API_KEYS. The secret stays a SecretStr: it never shows in a repr."""

    name: str
    scopes: frozenset[Scope]
    secret: SecretStr


def parse_api_keys(text: str) -> list[KeySpec]:
    """GODEL_API_KEYS: `<name>:<scopes>:<secret>` entries separated by commas, scopes joined
    by `+`. A secret may contain `:` but not `,`. Errors name the entry by position and
    name, never by its text (which holds the secret)."""
    keys: list[KeySpec] = []
    names: set[str] = set()
    digests: set[str] = set()
    for index, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        name, _, rest = entry.partition(":")
        scopes_text, _, secret = rest.partition(":")
        name = name.strip()
        # Named only when a name was really split off: a bare entry may be the secret itself.
        named = bool(rest) and NAME_RE.fullmatch(name)
        where = f"entry {index}" + (f" ({name!r})" if named else "")
        if not secret.strip() or not scopes_text.strip():
            raise ValueError(f"{where} is not <name>:<scopes>:<secret>")
        try:
            check_name(name)
            scopes = parse_scopes(scopes_text)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        secret = secret.strip()
        if name in names:
            raise ValueError(f"{where}: the name is used twice")
        if digest(secret) in digests:
            raise ValueError(f"{where}: the same secret as an earlier key")
        names.add(name)
        digests.add(digest(secret))
        keys.append(KeySpec(name, scopes, SecretStr(secret)))
    return keys
