#!/usr/bin/env bash
# The one command for checks and tests; CI runs it through .ci/run.
#   scripts/test.sh [pytest args...]    e.g. scripts/test.sh tests/unit -x
# Runs setup-dev.sh, then ruff check, ruff format --check and mypy (each on the paths that
# exist), then pytest. Every stage runs even after a failure, so one run shows everything;
# the exit code is non-zero when any stage failed.
# GODEL_SKIP_LINT=1 skips ruff and mypy (a quick local re-run of some tests).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> test: %s\n' "$*"; }

bash scripts/setup-dev.sh

failed=()

stage() {
    local name=$1
    shift
    say "$name"
    if "$@"; then
        return 0
    fi
    say "FAILED: $name"
    failed+=("$name")
}

existing() {
    local path
    for path in "$@"; do
        [[ -e $path ]] && printf '%s\n' "$path"
    done
    return 0
}

if [[ ${GODEL_SKIP_LINT:-0} != 1 ]]; then
    mapfile -t lint_paths < <(existing src tests bench)
    mapfile -t format_paths < <(existing src tests)
    if [[ ${#lint_paths[@]} -gt 0 ]]; then
        stage "ruff check ${lint_paths[*]}" .venv/bin/ruff check "${lint_paths[@]}"
    fi
    if [[ ${#format_paths[@]} -gt 0 ]]; then
        stage "ruff format --check ${format_paths[*]}" \
            .venv/bin/ruff format --check "${format_paths[@]}"
    fi
    # mypy takes its targets (src/godel) and strictness from pyproject.toml.
    if [[ -d src/godel ]]; then
        stage "mypy" .venv/bin/mypy
    fi
fi

say "pytest $*"
pytest_rc=0
.venv/bin/pytest "$@" </dev/null || pytest_rc=$?
case $pytest_rc in
    0) ;;
    5) say "pytest collected no tests (exit 5); not counted as a failure" ;;
    *) failed+=("pytest (exit $pytest_rc)") ;;
esac

if [[ ${#failed[@]} -gt 0 ]]; then
    say "FAILED stages: $(IFS=';'; echo "${failed[*]}")"
    exit 1
fi
say "all stages passed"
