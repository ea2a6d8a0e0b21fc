"""`godel keys`: API keys made, listed and revoked at run time, through a running API's
/admin/keys (the admin token). A new key's secret is printed once, alone on stdout, so
`KEY=$(godel keys create ingest --scope publish)` keeps it; the API stores only its digest.
"""

from __future__ import annotations

from typing import Annotated

import typer

from godel.cli.operate import DEFAULT_URL, JsonFlag, TokenOption, UrlOption, connect
from godel.cli.render import console, echo_json, fail, fmt_time, out

SCOPES = ("publish", "read", "admin")  # godel.credentials.Scope (a test keeps them equal)
KeyName = Annotated[str, typer.Argument(metavar="NAME", help="The key's name, e.g. ingest.")]


def keys_create(
    ctx: typer.Context,
    name: KeyName,
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help=f"A scope ({', '.join(SCOPES)}); repeat for more. admin implies the others.",
            show_default=False,
        ),
    ],
    as_json: JsonFlag = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Make a key; prints its secret once (the server keeps only a digest)."""
    unknown = [s for s in scope if s not in SCOPES]
    if unknown:
        raise fail(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}", 2)
    with connect(ctx, url, token) as client:
        made = client.post("/admin/keys", {"name": name, "scopes": scope}, admin=True)
    if as_json:
        echo_json(made)
        return
    console.print(
        f"created key {made['name']} ({'+'.join(made['scopes'])}); its secret, shown only "
        "now (send it as Authorization: Bearer <secret>):",
        highlight=False,
    )
    typer.echo(made["secret"])


def keys_list(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Every key by name, scopes and origin (environment or stored); never a secret."""
    from rich.table import Table

    with connect(ctx, url, token) as client:
        body = client.get("/admin/keys", admin=True)
    if as_json:
        echo_json(body)
        return
    table = Table("name", "scopes", "source", "created", box=None, pad_edge=False)
    for key in body["keys"]:
        created = fmt_time(key["created_at"]) if key.get("created_at") else "—"
        table.add_row(key["name"], "+".join(key["scopes"]), key["source"], created)
    out.print(table)


def keys_revoke(
    ctx: typer.Context,
    name: KeyName,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Revoke a stored key: refused at once here, everywhere within GODEL_KEY_CACHE_TTL_S."""
    from urllib.parse import quote

    with connect(ctx, url, token) as client:
        client.request("DELETE", f"/admin/keys/{quote(name, safe='')}", admin=True)
    out.print(
        f"revoked {name}; every API instance refuses it within GODEL_KEY_CACHE_TTL_S "
        "(5 s by default)"
    )
