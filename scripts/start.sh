#!/usr/bin/env bash
# Start the gateway and wait until it is healthy.
#   * With a Docker engine that answers (and GATEWAY_NATIVE is not 1): docker compose up -d --build.
#   * Otherwise natively: .venv/bin/python -m gateway serve in the background (its own session),
#     output appended to logs/gateway.log, PID (Granian's main process) in run/gateway.pid.
# Already running -> says so and exits 0. Port taken by something else -> exit 1.
# Holds the operator lock (run/gateway.lock, flock; see scripts/lib.sh) from start to finish, so
# two start.sh at once start one gateway: the second waits, then finds it running.
# The pid file holds "PID STARTTIME" (/proc/PID/stat field 22): a recycled PID is never taken
# for the gateway.
#
# Environment: GATEWAY_NATIVE=1 (never use Docker), GATEWAY_START_TIMEOUT (seconds to wait
# for health; default 30 natively, 120 with Docker).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TAG=start
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

case "${1:-}" in
    -h | --help)
        printf 'Usage: ./start.sh\n\nStarts the gateway (Docker Compose if an engine answers and GATEWAY_NATIVE!=1, else natively)\nand waits until /health/readiness answers. Logs: logs/gateway.log (native).\n'
        exit 0 ;;
    "") ;;
    *) die "unknown argument: $1 (see ./start.sh --help)" ;;
esac

[[ -f "$ENV_FILE" ]] || die "no .env here: run ./setup.sh first"
[[ -f "$ROOT/config/config.yaml" ]] || die "no config/config.yaml here: run ./setup.sh first"
lock_operator "./start.sh"

# wait_healthy URL SECONDS [PID]: poll URL until it answers 200; false on timeout or if PID dies.
wait_healthy() {
    local url="$1" timeout="$2" pid="${3:-}" start=$SECONDS next_note=$((SECONDS + 2))
    log "waiting up to ${timeout}s for $url"
    while ((SECONDS - start < timeout)); do
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            log "the gateway process $pid exited"
            return 1
        fi
        if http_ok "$url"; then
            return 0
        fi
        if ((SECONDS >= next_note)); then
            log "  still starting... ($((SECONDS - start))s)"
            next_note=$((SECONDS + 3))
        fi
        sleep 0.3
    done
    log "no healthy answer after ${timeout}s"
    return 1
}

# ------------------------------------------------------------------ Docker
start_docker() {
    find_compose || die "a Docker engine answers but neither 'docker compose' nor 'docker-compose' is installed (install one, or run natively with GATEWAY_NATIVE=1 ./start.sh)"
    mkdir -p "$ROOT/data" "$ROOT/config"
    export GATEWAY_PORT="${GATEWAY_PORT:-$(env_get GATEWAY_PORT)}"
    GATEWAY_PORT="${GATEWAY_PORT:-2906}"
    # The container user must be able to write data/ (bind mount).
    if [[ "$(id -u)" != 0 ]]; then
        export GATEWAY_UID="${GATEWAY_UID:-$(id -u)}" GATEWAY_GID="${GATEWAY_GID:-$(id -g)}"
    else
        local uid="${GATEWAY_UID:-10001}" gid="${GATEWAY_GID:-10001}"
        if [[ "$(stat -c '%u:%g' "$ROOT/data")" != "$uid:$gid" ]]; then
            log "giving data/ to the container user $uid:$gid"
            chown -R "$uid:$gid" "$ROOT/data"
        fi
    fi
    # What .env says for Compose: the container's limits (setup.sh --profile), Open WebUI's key
    # (--with-chat) and the profiles to start; several workers share state through Redis.
    local name workers
    for name in GATEWAY_CPUS GATEWAY_MEMORY OPENWEBUI_API_KEY COMPOSE_PROFILES; do
        [[ -n "${!name:-}" || -z "$(env_get "$name")" ]] || export "$name=$(env_get "$name")"
    done
    workers="$(env_get GATEWAY_WORKERS)"
    if [[ "${workers:-1}" =~ ^[0-9]+$ ]] && ((workers > 1)) && [[ ",${COMPOSE_PROFILES:-}," != *,redis,* ]]; then
        export COMPOSE_PROFILES="${COMPOSE_PROFILES:+$COMPOSE_PROFILES,}redis"
    fi
    log "Docker engine found: ${COMPOSE[*]} up -d --build${COMPOSE_PROFILES:+ (profiles: $COMPOSE_PROFILES)} (set GATEWAY_NATIVE=1 to run without Docker)"
    "${COMPOSE[@]}" up -d --build || die "docker compose up failed (see the output above)"
    local url_base="http://127.0.0.1:$GATEWAY_PORT"
    if ! wait_healthy "$url_base/health/readiness" "${GATEWAY_START_TIMEOUT:-120}"; then
        log "last 30 lines of the container log:"
        "${COMPOSE[@]}" logs --tail 30 gateway || true
        die "the gateway container did not become healthy"
    fi
    log "Gateway running at $url_base/v1 (Docker Compose; logs: ${COMPOSE[*]} logs -f gateway)"
}

# ------------------------------------------------------------------ native
port_in_use() {
    "$VENV_PY" - "$1" "$2" <<'EOF'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
probe = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
family = socket.AF_INET6 if ":" in probe else socket.AF_INET
with socket.socket(family) as s:
    s.settimeout(0.5)
    if s.connect_ex((probe, port)) == 0:
        sys.exit(0)
with socket.socket(family) as s:
    # SO_REUSEADDR as servers (Granian) use it: leftover TIME_WAIT connections do not count.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host or "0.0.0.0", port))
    except OSError:
        sys.exit(0)
sys.exit(1)
EOF
}

start_native() {
    [[ -x "$VENV_PY" ]] || die "no .venv here: run ./setup.sh first"
    mkdir -p "$ROOT/run" "$ROOT/logs"
    read_listen

    local pid started
    read -r pid started <<<"$(read_pid_file)"
    if [[ -n "$pid" ]]; then
        if pid_is_gateway "$pid" "$started"; then
            log "already running at $BASE_URL/v1 (pid $pid, logs: logs/gateway.log)"
            exit 0
        fi
        if pid_alive "$pid"; then
            log "removing stale pid file (pid $pid now belongs to another program; left it alone)"
        else
            log "removing stale pid file (process $pid is gone)"
        fi
        rm -f "$PID_FILE"
    fi

    if port_in_use "$LISTEN_HOST" "$LISTEN_PORT"; then
        die "port $LISTEN_PORT on $LISTEN_HOST is already in use by another program (another gateway copy?). Stop it, or choose another port: GATEWAY_PORT in .env (or ./setup.sh --force --random-ports)."
    fi

    log "starting the gateway natively on $LISTEN_HOST:$LISTEN_PORT (output appended to logs/gateway.log)"
    local marker
    marker="=== $(date '+%F %T') start.sh: starting the gateway on $LISTEN_HOST:$LISTEN_PORT"
    printf '%s\n' "$marker" >>"$LOG_FILE"
    # A new session (setsid) so that closing the terminal does not stop it; nohup for good measure.
    # env, setsid and nohup exec() in turn, and `python -m gateway serve` serves in-process (or
    # exec()s Granian), so $! stays the gateway's main PID. The server must not inherit the
    # operator lock: 9>&- closes its descriptor, env -u drops the variable that points at it.
    local launcher=()
    command -v setsid >/dev/null 2>&1 && launcher=(setsid)
    env -u GATEWAY_LOCK_FD ${launcher[@]+"${launcher[@]}"} nohup "$VENV_PY" -m gateway serve \
        </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    write_pid_file "$pid"

    if ! wait_healthy "$BASE_URL/health/readiness" "${GATEWAY_START_TIMEOUT:-30}" "$pid" \
            || ! pid_is_gateway "$pid"; then
        printf '[%s] last lines of logs/gateway.log (this start only, at most 30):\n' "$TAG" >&2
        tail -n 5000 "$LOG_FILE" | awk -v marker="$marker" '$0 == marker { n = 0 } { lines[n++] = $0 } END { for (i = (n > 30 ? n - 30 : 0); i < n; i++) print lines[i] }' >&2 || true
        if pid_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
        rm -f "$PID_FILE"
        die "the gateway did not become healthy (see the log lines above)"
    fi
    log "Gateway running at $BASE_URL/v1 (pid $pid, logs: logs/gateway.log)"
}

if [[ "${GATEWAY_NATIVE:-}" == 1 ]]; then
    log "GATEWAY_NATIVE=1: running natively (no Docker)"
    start_native
elif use_native; then
    log "no Docker engine answers ('docker info'): running natively"
    start_native
else
    start_docker
fi
