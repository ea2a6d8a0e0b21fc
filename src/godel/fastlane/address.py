"""Where Redis is: the forms GODEL_REDIS_URL takes, parsed without redis-py (the settings
validate the URL with this; the CLI starts without importing redis).

    redis://[user:password@]host:port[/db][?options]          one server (rediss://: TLS;
    unix:///path/to/redis.sock[?db=N]                          unix://: a socket)
    redis+sentinel://[user:password@]host:port[,host:port…]/<master>[/<db>][?options]
    redis+cluster://[user:password@]host:port[,host:port…][?options]

`rediss+sentinel://` and `rediss+cluster://` use TLS to every node (and to the Sentinels).
Options are redis-py's connection options as query parameters: `ssl_ca_certs=/ca.pem`,
`ssl_cert_reqs=required`, `ssl_certfile`, `ssl_keyfile`, `ssl_check_hostname`; for Sentinel
also `sentinel_username` and `sentinel_password` (default: the URL's credentials, as
Bitnami's chart sets the Sentinels up; an empty `sentinel_password=` sends none).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

SENTINEL_PORT = 26379
REDIS_PORT = 6379
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


class RedisMode(enum.Enum):
    """How Godel reaches Redis."""

    STANDALONE = "standalone"  # one server (or anything that looks like one)
    SENTINEL = "sentinel"  # the master the Sentinels name, followed across failovers
    CLUSTER = "cluster"  # Redis Cluster: every Godel key in one hash slot ({godel})


_SCHEMES = {
    "redis": (RedisMode.STANDALONE, False),
    "rediss": (RedisMode.STANDALONE, True),
    "unix": (RedisMode.STANDALONE, False),
    "redis+sentinel": (RedisMode.SENTINEL, False),
    "rediss+sentinel": (RedisMode.SENTINEL, True),
    "redis+cluster": (RedisMode.CLUSTER, False),
    "rediss+cluster": (RedisMode.CLUSTER, True),
}
SCHEMES = tuple(f"{scheme}://" for scheme in _SCHEMES)


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """A parsed GODEL_REDIS_URL.

    `node_url` is a one-server `redis://` (or `rediss://`) URL with the credentials, db and
    options, for redis-py's own URL parser; `nodes` are the Sentinels or the cluster's seed
    nodes (empty for one server); `sentinel_auth` the Sentinels' (username, password)."""

    mode: RedisMode
    url: str = field(repr=False)  # the URLs carry the password: never in a repr
    tls: bool
    node_url: str = field(repr=False)
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    sentinel_auth: tuple[str | None, str | None] | None = field(default=None, repr=False)


def parse_redis_url(url: str) -> RedisAddress:
    """Parse and check a Redis URL; ValueError with one line (never the password) if bad."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError(f"must start with one of {', '.join(SCHEMES)}")
    mode, tls = _SCHEMES[scheme.lower()]
    if mode is RedisMode.STANDALONE:
        return RedisAddress(mode, url, tls, url)
    parts = urlsplit(f"redis://{rest}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    default_port = SENTINEL_PORT if mode is RedisMode.SENTINEL else REDIS_PORT
    nodes = tuple(_host_port(h, default_port) for h in hosts.split(","))
    path = [unquote(p) for p in parts.path.split("/") if p]
    service, db = _service_and_db(mode, path)
    options = parse_qsl(parts.query, keep_blank_values=True)
    sentinel_auth = _sentinel_auth(mode, userinfo, options)
    kept = urlencode([(k, v) for k, v in options if k not in SENTINEL_OPTIONS])
    credentials = f"{userinfo}@" if userinfo else ""
    host, port = nodes[0]
    host = f"[{host}]" if ":" in host else host
    node_url = f"{'rediss' if tls else 'redis'}://{credentials}{host}:{port}/{db}"
    node_url += f"?{kept}" if kept else ""
    return RedisAddress(mode, url, tls, node_url, nodes, service, db, sentinel_auth)


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [::1]:26379
        host, _, tail = text[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError("every node needs a host: host:port[,host:port…]")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"not a port: {port_text!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"not a port: {port}")
    return host, port


def _service_and_db(mode: RedisMode, path: list[str]) -> tuple[str | None, int]:
    if mode is RedisMode.SENTINEL:
        if not path or len(path) > 2:
            raise ValueError("Sentinel URLs name the master: redis+sentinel://host:port/<master>")
        return path[0], _db(path[1]) if len(path) == 2 else 0
    if path and path != ["0"]:
        raise ValueError("Redis Cluster has only database 0: redis+cluster://host:port")
    return None, 0


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"not a database number: {text!r}")
    return int(text)


def _sentinel_auth(
    mode: RedisMode, userinfo: str, options: list[tuple[str, str]]
) -> tuple[str | None, str | None] | None:
    if mode is not RedisMode.SENTINEL:
        if any(k in SENTINEL_OPTIONS for k, _ in options):
            raise ValueError("sentinel_username/sentinel_password are for redis+sentinel://")
        return None
    given = dict(options)
    if "sentinel_password" in given or "sentinel_username" in given:
        return given.get("sentinel_username") or None, given.get("sentinel_password") or None
    user, _, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) or None
