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
# The operator lock (flock) that serializes start/stop/virtual-key and setup's writes of .env and
# config/config.yaml. The gateway's Python side takes the same file: gateway/server/oplock.py resolves
# it the same way ($GATEWAY_LOCK_FILE, else run/gateway.lock under the checkout's root).
LOCK_FILE="${GATEWAY_LOCK_FILE:-$ROOT/run/gateway.lock}"
LOCK_FD=9  # the descriptor the lock is held on (literal 9 in lock_operator/unlock_operator)

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

# The program name of PID (/proc/PID/comm: never its arguments, which may hold secrets).
pid_program() {
    local name=""
    read -r name 2>/dev/null <"/proc/$1/comm" || name="$(ps -o comm= -p "$1" 2>/dev/null)" || true
    printf '%s\n' "${name:-unknown}"
}

# The start time of PID (clock ticks after boot: field 22 of /proc/PID/stat), or false.
# A recycled PID has another start time, so PID + start time names one process for good.
pid_starttime() {
    local stat fields
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    # The command name (field 2) may hold spaces: count the fields after its closing ")".
    read -r -a fields <<<"${stat##*) }"
    [[ "${fields[19]:-}" =~ ^[0-9]+$ ]] || return 1
    printf '%s\n' "${fields[19]}"
}

# True if ARGV (one argument each) is exactly the server start.sh launches from this checkout:
# `.venv/bin/python -m gateway serve`, or the Granian command line it exec()s into with
# several workers or GATEWAY_EMBEDDED=0 (same PID): `.venv/bin/python -m granian ... gateway.app:create_app`.
is_gateway_argv() {
    [[ $# -ge 4 && "$1" == "$VENV_PY" && "$2" == -m ]] || return 1
    if [[ $# == 4 && "$3" == gateway && "$4" == serve ]]; then
        return 0
    fi
    [[ "$3" == granian && "${!#}" == gateway.app:create_app ]]
}

# pid_is_gateway PID [STARTTIME]: true if PID is alive, runs exactly our server command line
# and (when STARTTIME is given, as the pid file records it) started at that very time.
# Never a substring match: `tail -f logs/gateway.log` on a recycled PID is not the gateway.
pid_is_gateway() {
    local pid="$1" started="${2:-}" argv=()
    pid_alive "$pid" || return 1
    if [[ -n "$started" && "$(pid_starttime "$pid")" != "$started" ]]; then
        return 1
    fi
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    mapfile -d '' -t argv 2>/dev/null <"/proc/$pid/cmdline" || return 1
    is_gateway_argv ${argv[@]+"${argv[@]}"}
}

# Prints "PID STARTTIME" from run/gateway.pid (STARTTIME empty in a file an older start.sh
# wrote), or nothing. Use: read -r pid started <<<"$(read_pid_file)"
read_pid_file() {
    local pid="" started=""
    [[ -f "$PID_FILE" ]] || return 0
    read -r pid started _ <"$PID_FILE" || true
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    [[ "$started" =~ ^[0-9]+$ ]] || started=""
    printf '%s %s\n' "$pid" "$started"
}

# write_pid_file PID: records PID and its start time, atomically.
write_pid_file() {
    local pid="$1" started
    started="$(pid_starttime "$pid")" || started=""
    mkdir -p "$(dirname "$PID_FILE")"
    (umask 022 && printf '%s %s\n' "$pid" "$started" >"$PID_FILE.tmp") && mv -f "$PID_FILE.tmp" "$PID_FILE"
}

# ------------------------------------------------------------------ the operator lock

# Who holds the lock, as its holder wrote it into the lock file.
lock_holder() {
    local line=""
    [[ -r "$LOCK_FILE" ]] && read -r line <"$LOCK_FILE" 2>/dev/null
    printf '%s\n' "${line:-an unknown process}"
}

# flock_fd SECONDS: take an exclusive flock on descriptor $LOCK_FD within SECONDS (0: try once).
# flock(1) where it exists, else Python's fcntl.flock on the same (inherited) open file.
flock_fd() {
    local wait="$1" py
    if command -v flock >/dev/null 2>&1; then
        if [[ "$wait" == 0 ]]; then flock -n "$LOCK_FD"; else flock -w "$wait" "$LOCK_FD"; fi
        return
    fi
    py="$(helper_python)" || die "neither flock(1) nor python3 is available to take $LOCK_FILE"
    "$py" -c '
import fcntl, sys, time
fd, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while True:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sys.exit(0)
    except BlockingIOError:
        if time.monotonic() >= deadline:
            sys.exit(1)
        time.sleep(0.05)
' "$LOCK_FD" "$wait"
}

# lock_operator WHAT: hold the operator lock until this script exits (or unlock_operator), so
# that no other start/stop/virtual-key/setup (nor the gateway's own writers) runs meanwhile.
# Waits up to GATEWAY_LOCK_TIMEOUT seconds (default 120) and says for whom it waits.
lock_operator() {
    local what="$1" timeout="${GATEWAY_LOCK_TIMEOUT:-120}"
    [[ "$timeout" =~ ^[0-9]+$ ]] || die "GATEWAY_LOCK_TIMEOUT must be a whole number of seconds, not '$timeout'"
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9<>"$LOCK_FILE" || die "cannot open the lock file $LOCK_FILE"  # 9 = $LOCK_FD
    if ! flock_fd 0; then
        log "waiting for ${LOCK_FILE#"$ROOT"/}, held by $(lock_holder) (up to ${timeout}s)"
        flock_fd "$timeout" || die "${LOCK_FILE#"$ROOT"/} is still held by $(lock_holder) after ${timeout}s; let that finish (or stop it) and try again"
    fi
    printf 'pid %s: %s since %s\n' "$$" "$what" "$(date '+%F %T')" >"$LOCK_FILE"
    # A Python child (python -m gateway add-client) sees it holds the lock through this descriptor.
    export GATEWAY_LOCK_FD="$LOCK_FD"
}

# Release the operator lock early (it is released anyway when the script exits).
unlock_operator() {
    unset GATEWAY_LOCK_FD
    exec 9>&-  # 9 = $LOCK_FD
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
