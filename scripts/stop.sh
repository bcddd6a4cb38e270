#!/usr/bin/env bash
# Stop the gateway. Idempotent: nothing running -> says so, exit 0.
#   * Native: the PID in run/gateway.pid gets SIGTERM (Granian drains and exits), SIGKILL after
#     GATEWAY_STOP_TIMEOUT seconds (default 30). A PID that is no longer our gateway (reused by
#     another program) is never signalled: the pid file records the process's start time, and
#     the process must run exactly our server command line (scripts/lib.sh: pid_is_gateway).
#   Holds the operator lock (run/gateway.lock) while it works, so it never races a start.sh.
#   * Docker: if an engine answers (and GATEWAY_NATIVE is not 1) and the compose stack has
#     containers, `docker compose down`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TAG=stop
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

case "${1:-}" in
    -h | --help) printf 'Usage: ./stop.sh\n\nStops the gateway started by ./start.sh (natively or with Docker Compose).\n'; exit 0 ;;
    "") ;;
    *) die "unknown argument: $1 (see ./stop.sh --help)" ;;
esac

TIMEOUT="${GATEWAY_STOP_TIMEOUT:-30}"
lock_operator "./stop.sh"

stop_native() {
    local pid started
    read -r pid started <<<"$(read_pid_file)"
    if [[ -z "$pid" ]]; then
        [[ -f "$PID_FILE" ]] && rm -f "$PID_FILE"
        log "native gateway: not running (no run/gateway.pid)"
        return 0
    fi
    if ! pid_alive "$pid"; then
        rm -f "$PID_FILE"
        log "native gateway: not running (process $pid is gone; removed the stale pid file)"
        return 0
    fi
    if ! pid_is_gateway "$pid" "$started"; then
        rm -f "$PID_FILE"
        log "native gateway: not running (pid $pid now belongs to another program: $(pid_program "$pid"); left it alone, removed the stale pid file)"
        return 0
    fi

    log "stopping the gateway (pid $pid, SIGTERM; waiting up to ${TIMEOUT}s for in-flight requests)"
    kill -TERM "$pid" 2>/dev/null || true
    local start=$SECONDS next_note=$((SECONDS + 5))
    while pid_alive "$pid" && ((SECONDS - start < TIMEOUT)); do
        if ((SECONDS >= next_note)); then
            log "  still stopping... ($((SECONDS - start))s)"
            next_note=$((SECONDS + 5))
        fi
        sleep 0.2
    done
    if pid_alive "$pid"; then
        log "the gateway did not exit within ${TIMEOUT}s: sending SIGKILL to its process group"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 25); do
            pid_alive "$pid" || break
            sleep 0.2
        done
        pid_alive "$pid" && die "process $pid survived SIGKILL"
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

stop_docker() {
    [[ "${GATEWAY_NATIVE:-}" == 1 ]] && return 0
    docker_engine_up || return 0
    if ! find_compose; then
        log "a Docker engine answers but no docker compose / docker-compose is installed: cannot check the compose stack"
        return 0
    fi
    if [[ ! -f "$ENV_FILE" ]]; then
        log "no .env: the compose stack was never started from here"
        return 0
    fi
    local ids
    ids="$("${COMPOSE[@]}" ps -q 2>/dev/null || true)"
    if [[ -z "$ids" ]]; then
        log "Docker Compose stack: not running"
        return 0
    fi
    log "stopping the Docker Compose stack: ${COMPOSE[*]} down"
    "${COMPOSE[@]}" down --timeout "$TIMEOUT" || die "docker compose down failed"
    log "Docker Compose stack stopped"
}

stop_native
stop_docker
