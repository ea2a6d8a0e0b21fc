#!/usr/bin/env bash
# Set up and run Godel on its embedded default: an SQLite ledger under ./.godel and a private
# redis-server (installed through apt when missing and we may); without one, fallback mode.
#   scripts/run.sh [godel serve options...]     e.g. scripts/run.sh --port 9000
# Every route but liveness, readiness and /metrics wants `Authorization: Bearer <token>`:
# the admin token is $GODEL_ADMIN_TOKEN when set, else one `godel serve` makes and prints.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf '==> run: %s\n' "$*"; }

if ! command -v redis-server >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing redis-server (apt)"
        if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 \
                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1; }; }; then
            say "could not install redis-server: Godel will run in fallback mode"
        fi
        # Debian starts a system redis on install; Godel runs its own private one.
        command -v systemctl >/dev/null && systemctl disable --now redis-server >/dev/null 2>&1 || true
        pkill -f '^/usr/bin/redis-server 127.0.0.1:6379' 2>/dev/null || true
    else
        say "redis-server not installed: Godel will run in fallback mode"
    fi
fi

if [[ ! -x .venv/bin/godel || pyproject.toml -nt .venv/.godel-installed ]]; then
    say "creating .venv and installing godel"
    [[ -d .venv ]] || python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e .
    touch .venv/.godel-installed
fi

exec .venv/bin/godel serve "$@"
