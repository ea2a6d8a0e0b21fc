#!/usr/bin/env bash
# Install what the test suite needs, idempotently: system packages (Debian, as root or with
# passwordless sudo) and the project venv (.venv with `pip install -e '.[test]'`).
# A package that cannot be installed is a warning, not a failure: the tests that need it
# skip with a reason.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

say() { printf '==> setup: %s\n' "$*"; }
warn() { printf '==> setup: WARNING: %s\n' "$*" >&2; }

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || command -v postgres >/dev/null
}

# One line per need: "<check> <apt package>"; the check is a command name or a function.
missing_packages() {
    local check pkg
    while read -r check pkg; do
        if [[ $check == have_* ]]; then
            "$check" || echo "$pkg"
        else
            command -v "$check" >/dev/null || echo "$pkg"
        fi
    done <<'NEEDS'
redis-server redis-server
redis-cli redis-tools
have_postgres postgresql
promtool prometheus
chromium chromium
nc netcat-openbsd
curl curl
wrk wrk
NEEDS
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    else
        sudo -n "$@"
    fi
}

can_install() {
    command -v apt-get >/dev/null || { warn "no apt-get (not Debian?)"; return 1; }
    [[ $(id -u) -eq 0 ]] && return 0
    sudo -n true 2>/dev/null && return 0
    warn "not root and no passwordless sudo"
    return 1
}

# Debian packages start their services on install (prometheus would listen on 0.0.0.0:9090).
# policy-rc.d exit 101 tells invoke-rc.d not to; tests start their own servers.
block_service_starts() {
    POLICY=/usr/sbin/policy-rc.d
    if [[ -e $POLICY ]]; then
        POLICY=""
        return
    fi
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$POLICY" >/dev/null
    as_root chmod 755 "$POLICY"
    trap 'as_root rm -f "$POLICY"' EXIT
}

has_candidate() {
    # Not `apt-cache ... | grep -q`: grep exiting early makes the pipe fail under pipefail.
    local policy
    policy=$(apt-cache policy "$1" 2>/dev/null) || return 1
    [[ $policy == *"Candidate: "[!\(]* ]]
}

install_system_packages() {
    local missing installable=() pkg
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "system packages present"
        return
    fi
    say "missing system packages: ${missing[*]}"
    can_install || { warn "cannot install ${missing[*]}; tests needing them will skip"; return; }
    say "apt-get update"
    as_root apt-get update -qq </dev/null || warn "apt-get update failed"
    for pkg in "${missing[@]}"; do
        if has_candidate "$pkg"; then
            installable+=("$pkg")
        else
            warn "no apt candidate for $pkg"
        fi
    done
    [[ ${#installable[@]} -eq 0 ]] && return
    block_service_starts
    say "apt-get install ${installable[*]}"
    if ! as_root apt-get install -y -qq --no-install-recommends "${installable[@]}" </dev/null; then
        # One bad package must not block the others: retry them one by one.
        for pkg in "${installable[@]}"; do
            as_root apt-get install -y -qq --no-install-recommends "$pkg" </dev/null \
                || warn "could not install $pkg"
        done
    fi
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -gt 0 ]]; then
        warn "still missing: ${missing[*]}; tests needing them will skip"
    fi
}

pick_python() {
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"
            return
        fi
    done
    return 1
}

# Reinstall only when pyproject.toml changed since the last successful install.
install_venv() {
    local stamp=.venv/.godel-setup-stamp digest
    if [[ ! -x .venv/bin/python ]]; then
        local python
        python=$(pick_python) || { warn "no Python >= 3.11 found"; return 1; }
        say "creating .venv with $python"
        "$python" -m venv .venv
    fi
    digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
    # Ask for the distribution, not `import godel`: a half-written package must not force a
    # reinstall on every run.
    if [[ -f $stamp && $(cat "$stamp") == "$digest" ]] \
        && .venv/bin/python -c 'import importlib.metadata as m; m.distribution("godel")' 2>/dev/null; then
        say ".venv up to date"
        return
    fi
    say "pip install -e '.[test]'"
    .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[test]' </dev/null
    echo "$digest" >"$stamp"
}

install_system_packages
install_venv
say "done"
