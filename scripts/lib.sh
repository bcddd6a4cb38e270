# shellcheck shell=bash
# Shared helpers for setup.sh, start.sh, stop.sh and virtual-key.sh. Sourced, never run.
#
# The caller sets ROOT (the repository root, already the working directory) and TAG (the
# prefix of its progress lines) before sourcing this file. The globals set here (paths,
# BASE_URL, COMPOSE, ...) are used by those scripts.
# shellcheck disable=SC2034

VENV_PY="$ROOT/.venv/bin/python"
ENV_FILE="$ROOT/.env"
PID_FILE="$ROOT/run/gateway.pid"
LOG_FILE="$ROOT/logs/gateway.log"
COMPOSE_FILE="$ROOT/compose/compose.yaml"

log() { printf '[%s] %s\n' "$TAG" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "$TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$TAG" "$*" >&2; exit 1; }

# A Python to run small helpers with: the project's venv if there is one, else python3.
helper_python() {
    if [[ -x "$VENV_PY" ]]; then
        printf '%s\n' "$VENV_PY"
    elif command -v python3 >/dev/null 2>&1; then
        command -v python3
    else
        return 1
    fi
}

# Value of KEY in .env (last assignment wins, surrounding quotes removed); empty if unset.
env_get() {
    local key="$1" line value=""
    [[ -f "$ENV_FILE" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line#export }"
        if [[ "$line" == "$key="* ]]; then
            value="${line#"$key"=}"
        fi
    done <"$ENV_FILE"
    value="${value%$'\r'}"
    value="${value#[\"\']}"
    value="${value%[\"\']}"
    printf '%s\n' "$value"
}

# ------------------------------------------------------------------ processes

# True if PID names a live process (a zombie counts as gone).
pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        # The state is the first field after the ")" that closes the command name.
        state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || state=""
        [[ "$state" != "Z" ]] || return 1
    fi
    return 0
}

# The command line of PID, arguments separated by spaces.
pid_cmdline() {
    local pid="$1"
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true
    else
        ps -o args= -p "$pid" 2>/dev/null || true
    fi
}

# True if PID is alive and looks like our gateway (guards against a recycled PID).
pid_is_gateway() {
    local pid="$1" cmd
    pid_alive "$pid" || return 1
    cmd="$(pid_cmdline "$pid")"
    [[ "$cmd" == *granian* || "$cmd" == *gateway* ]]
}

# The PID recorded in run/gateway.pid, or nothing.
read_pid_file() {
    local pid=""
    [[ -f "$PID_FILE" ]] || return 0
    read -r pid <"$PID_FILE" || true
    printf '%s\n' "$pid"
}

# ------------------------------------------------------------------ HTTP

# http_ok URL [KEY]: exit 0 when URL answers 200 within 2 s (KEY, if given, as a Bearer key,
# passed on stdin so it never shows in a process list).
http_ok() {
    local url="$1" key="${2:-}" py
    if py="$(helper_python)"; then
        printf '%s' "$key" | "$py" -c '
import sys, urllib.request
url, key = sys.argv[1], sys.stdin.read().strip()
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key} if key else {})
try:
    with urllib.request.urlopen(req, timeout=2) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except Exception:
    sys.exit(1)
' "$url"
    elif command -v curl >/dev/null 2>&1; then
        if [[ -n "$key" ]]; then
            printf 'header = "Authorization: Bearer %s"\n' "$key" | curl -fsS -o /dev/null -m 2 -K - "$url" 2>/dev/null
        else
            curl -fsS -o /dev/null -m 2 "$url" 2>/dev/null
        fi
    else
        return 1
    fi
}

# URL form of a listen host: 0.0.0.0 -> 127.0.0.1, :: -> [::1], IPv6 in brackets.
url_host() {
    local host="$1"
    case "$host" in
        "" | 0.0.0.0) printf '127.0.0.1\n' ;;
        "::") printf '[::1]\n' ;;
        *:*) printf '[%s]\n' "$host" ;;
        *) printf '%s\n' "$host" ;;
    esac
}

# Sets LISTEN_HOST, LISTEN_PORT and BASE_URL from `python -m gateway listen`.
read_listen() {
    local out errf
    errf="$(mktemp)"
    if ! out="$("$VENV_PY" -m gateway listen 2>"$errf")"; then
        cat "$errf" >&2
        rm -f "$errf"
        die "cannot read the listen address: the config is not valid (fix it; check with: .venv/bin/python -m gateway check-config)"
    fi
    rm -f "$errf"
    read -r LISTEN_HOST LISTEN_PORT <<<"$out"
    [[ "$LISTEN_PORT" =~ ^[0-9]+$ ]] || die "unexpected output from 'python -m gateway listen': $out"
    BASE_URL="http://$(url_host "$LISTEN_HOST"):$LISTEN_PORT"
}

# ------------------------------------------------------------------ Docker

# True if a Docker engine answers within a few seconds.
docker_engine_up() {
    command -v docker >/dev/null 2>&1 || return 1
    if command -v timeout >/dev/null 2>&1; then
        timeout 5 docker info >/dev/null 2>&1
    else
        docker info >/dev/null 2>&1
    fi
}

# Sets the array COMPOSE to "docker compose" or "docker-compose"; false if neither exists.
find_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose -f "$COMPOSE_FILE")
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose -f "$COMPOSE_FILE")
    else
        return 1
    fi
}

# True if the user asked for the native mode, or no Docker engine answers.
use_native() {
    [[ "${GATEWAY_NATIVE:-}" == 1 ]] && return 0
    ! docker_engine_up
}
