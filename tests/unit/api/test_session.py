"""The dashboard's session cookie values: signed, expiring, bound to one signing key."""

from __future__ import annotations

from godel.api.session import Sessions, signing_key

DIGEST = "ab" * 32


def test_a_value_names_its_key_until_it_expires() -> None:
    sessions = Sessions(signing_key(None, "admin-token"), ttl_s=60)
    value, expires = sessions.issue(DIGEST, now=1000.0)
    assert expires == 1060
    assert sessions.verify(value, now=1059.0) == DIGEST
    assert sessions.verify(value, now=1060.0) is None


def test_tampered_or_foreign_values_are_refused() -> None:
    sessions = Sessions(signing_key(None, "admin-token"), ttl_s=60)
    value, _ = sessions.issue(DIGEST, now=1000.0)
    body, _, mac = value.rpartition(".")
    longer = body.replace(".1060", ".9999999999")
    other = "cd" * 32
    for forged in (
        f"{longer}.{mac}",  # extended expiry
        value.replace(DIGEST, other),  # another key
        value[:-2],
        "",
        "v1...",
        "v2" + value[2:],
    ):
        assert sessions.verify(forged, now=1001.0) is None, forged
    # Every instance sharing the admin token (or GODEL_SESSION_SECRET) accepts it ...
    assert Sessions(signing_key(None, "admin-token"), 60).verify(value, now=1001.0) == DIGEST
    # ... and nothing else does: a rotated token ends every session.
    assert Sessions(signing_key(None, "rotated"), 60).verify(value, now=1001.0) is None
    assert signing_key("shared", "a") == signing_key("shared", "b") != signing_key(None, "a")
