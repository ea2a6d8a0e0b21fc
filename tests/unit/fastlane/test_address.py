"""GODEL_REDIS_URL's three forms, parsed (and refused) before redis-py is involved."""

from __future__ import annotations

import pytest

from godel.config import load_settings
from godel.errors import ConfigError
from godel.fastlane.address import RedisMode, parse_redis_url


def test_standalone_urls_are_kept_as_they_are() -> None:
    for url in ("redis://h:1/2", "rediss://u:p@h:1/0?ssl_ca_certs=/ca.pem", "unix:///r.sock"):
        address = parse_redis_url(url)
        assert address.mode is RedisMode.STANDALONE and address.node_url == url
    assert parse_redis_url("rediss://h:1/0").tls


def test_sentinel_url_names_the_sentinels_the_master_and_the_db() -> None:
    address = parse_redis_url("redis+sentinel://u:p%40ss@s1:26380,s2,[::1]:26381/mymaster/3")
    assert address.mode is RedisMode.SENTINEL and not address.tls
    assert address.nodes == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert address.service == "mymaster" and address.db == 3
    # One node's URL for redis-py's parser: the credentials, db and options ride along.
    assert address.node_url == "redis://u:p%40ss@s1:26380/3"
    assert address.sentinel_auth == ("u", "p@ss")  # by default the Sentinels' too


def test_sentinel_credentials_of_their_own_and_tls() -> None:
    url = "rediss+sentinel://:pw@s1:1/m?ssl_ca_certs=/ca.pem&sentinel_password="
    address = parse_redis_url(url)
    assert address.tls and address.sentinel_auth == (None, None)  # empty: send none
    assert address.node_url == "rediss://:pw@s1:1/0?ssl_ca_certs=%2Fca.pem"
    other = parse_redis_url("redis+sentinel://s1:1/m?sentinel_username=a&sentinel_password=b")
    assert other.sentinel_auth == ("a", "b") and "sentinel" not in other.node_url


def test_cluster_url_lists_seed_nodes() -> None:
    address = parse_redis_url("redis+cluster://u:p@n1:7000,n2:7001")
    assert address.mode is RedisMode.CLUSTER
    assert address.nodes == (("n1", 7000), ("n2", 7001))
    assert address.node_url == "redis://u:p@n1:7000/0"
    assert parse_redis_url("rediss+cluster://n1").nodes == (("n1", 6379),)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:1", "must start with one of"),
        ("redis+sentinel://u:secret@s1:1", "name the master"),
        ("redis+sentinel://s1:1/m/x", "not a database number"),
        ("redis+cluster://u:secret@n1:1/2", "only database 0"),
        ("redis+cluster://n1:port", "not a port"),
        ("redis+cluster://n1:1,:2", "needs a host"),
        ("redis+cluster://n1:1?sentinel_password=x", "for redis+sentinel"),
    ],
)
def test_bad_urls_are_refused_in_one_line_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(redis_url=url, embedded_redis=False)
    message = str(caught.value)
    assert message.startswith("invalid GODEL_REDIS_URL") and says in message
    assert "secret" not in message and "\n" not in message


def test_the_parsed_address_never_shows_the_password() -> None:
    address = parse_redis_url("redis+sentinel://u:hunter2@s1:1/m")
    assert "hunter2" not in repr(address)
