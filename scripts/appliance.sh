# shellcheck shell=bash
# setup.sh's appliance options: resource profiles (--profile), the Open WebUI client key
# (--with-chat) and the monitoring secrets (--with-monitoring). Sourced by setup.sh after
# scripts/lib.sh, never run. How the profile sizes were measured: docs/operations.md.
# shellcheck disable=SC2034

# profile -> "WORKERS CPUS MEMORY": Granian workers (GATEWAY_WORKERS) and the gateway container's
# limits (compose.yaml: cpus, mem_limit). One worker saturates about one core; memory is the
# measured RSS of a worker under load, times the workers, plus headroom for bursts and the cache.
profile_sizes() {
    case "$1" in
        small) printf '1 1 384m\n' ;;
        medium) printf '2 2 768m\n' ;;
        large) printf '4 4 1536m\n' ;;
        *) return 1 ;;
    esac
}

# What a config created for several workers gets: they share limits, cooldowns and spend through
# Redis (the compose file's redis service sets GATEWAY_REDIS_ADDR=redis:6379 in the container).
REDIS_RUNTIME_BLOCK='
# Several workers (./setup.sh --profile medium|large) share limit windows, cooldowns and spend
# through Redis: the compose file'"'"'s redis service in a container, else a Redis on this machine.
storage:
  runtime: {type: redis, addr: "${GATEWAY_REDIS_ADDR:-127.0.0.1:6379}"}
'

# env_set NAME VALUE: NAME=VALUE in .env (mode 600, atomic; the value travels on stdin).
env_set() {
    printf '%s' "$2" | "$BASE_PY" "$ROOT/scripts/envfile.py" set "$ENV_FILE" "$1"
}

# apply_profile NAME: writes GATEWAY_WORKERS, GATEWAY_CPUS and GATEWAY_MEMORY to .env.
apply_profile() {
    local workers cpus memory
    read -r workers cpus memory <<<"$(profile_sizes "$1")"
    env_set GATEWAY_WORKERS "$workers"
    env_set GATEWAY_CPUS "$cpus"
    env_set GATEWAY_MEMORY "$memory"
    log "profile $1: GATEWAY_WORKERS=$workers, container limits GATEWAY_CPUS=$cpus GATEWAY_MEMORY=$memory (in .env)"
}

# add_compose_profile NAME: NAME joins COMPOSE_PROFILES in .env (start.sh passes it to Compose).
add_compose_profile() {
    local current
    current="$(env_get COMPOSE_PROFILES)"
    case ",$current," in
        *",$1,"*) return 0 ;;
    esac
    env_set COMPOSE_PROFILES "${current:+$current,}$1"
    log "COMPOSE_PROFILES=${current:+$current,}$1 in .env: start.sh starts the '$1' services where Docker runs"
}

# runtime_store: the type of the config's runtime store (sqlite, memory, redis, postgres).
runtime_store() {
    "$VENV_PY" -c '
from gateway.config.loader import load_config
from gateway.settings import load_settings
settings = load_settings()
print(load_config(settings.config, settings.env_file).config.storage.runtime_backend().type)'
}

# check_workers_store: several workers need a shared runtime store; say what is missing.
check_workers_store() {
    local workers kind
    workers="$(env_get GATEWAY_WORKERS)"
    [[ "${workers:-1}" =~ ^[0-9]+$ ]] && ((workers > 1)) || return 0
    kind="$(runtime_store)" || return 0
    if [[ "$kind" == sqlite ]]; then
        warn "GATEWAY_WORKERS=$workers needs a shared store for limits, cooldowns and spend, but config/config.yaml keeps them in SQLite: start.sh refuses to start until it names Redis (storage: {runtime: {type: redis, addr: \"127.0.0.1:6379\"}}), or use --profile small"
    elif [[ "$kind" == redis ]] && ! docker_engine_up && ! redis_answers; then
        warn "GATEWAY_WORKERS=$workers shares state through Redis, and none answers at ${GATEWAY_REDIS_ADDR:-127.0.0.1:6379}: install one (apt-get install redis-server) before ./start.sh, or use --profile small"
    fi
}

redis_answers() {
    "$BASE_PY" - "${GATEWAY_REDIS_ADDR:-127.0.0.1:6379}" <<'EOF'
import socket, sys
host, _, port = sys.argv[1].rpartition(":")
try:
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except (OSError, ValueError):
    sys.exit(1)
EOF
}

# new_client_key ID [--admin]: a client in config/config.yaml (only its hash), its key on stdout.
new_client_key() {
    local key errf
    errf="$(mktemp)"
    if ! key="$("$VENV_PY" -m gateway add-client --id "$@" 2>"$errf")"; then
        sed "s/^/[$TAG]   /" "$errf" >&2
        rm -f "$errf"
        die "could not create the client '$1'"
    fi
    rm -f "$errf"
    key="$(printf '%s\n' "$key" | tail -n 1 | tr -d '[:space:]')"
    [[ "$key" == sk-* ]] || die "add-client printed no key for '$1'"
    printf '%s\n' "$key"
}

# with_chat: Open WebUI's client key (client id open-webui) as OPENWEBUI_API_KEY in .env, shown once.
with_chat() {
    local key
    lock_operator "./setup.sh --with-chat"
    if [[ -n "$(env_get OPENWEBUI_API_KEY)" ]]; then
        log "kept OPENWEBUI_API_KEY in .env (Open WebUI's client key)"
    else
        key="$(new_client_key open-webui)"
        env_set OPENWEBUI_API_KEY "$key"
        log "created client 'open-webui' for Open WebUI; its key (shown only this once; saved in .env as OPENWEBUI_API_KEY):"
        printf '%s\n' "$key"
    fi
    add_compose_profile chat
    unlock_operator
}

# with_monitoring: an admin client `prometheus` whose key Prometheus sends to /metrics, and
# Grafana's admin password, as files under run/secrets/ (a mode-700 directory: the files are
# readable by the containers' users, the directory by no one else on the host). Never printed.
with_monitoring() {
    local secrets="$ROOT/run/secrets"
    lock_operator "./setup.sh --with-monitoring"
    mkdir -p "$secrets"
    chmod 700 "$secrets"
    if [[ -s "$secrets/prometheus.key" ]]; then
        log "kept run/secrets/prometheus.key (Prometheus's key for /metrics)"
    else
        (umask 022 && new_client_key prometheus --admin >"$secrets/prometheus.key.tmp")
        mv -f "$secrets/prometheus.key.tmp" "$secrets/prometheus.key"
        log "created admin client 'prometheus'; its key is in run/secrets/prometheus.key (not shown)"
    fi
    if [[ -s "$secrets/grafana-admin-password" ]]; then
        log "kept run/secrets/grafana-admin-password"
    else
        (umask 022 && "$BASE_PY" -c 'import secrets; print(secrets.token_urlsafe(18))' \
            >"$secrets/grafana-admin-password.tmp")
        mv -f "$secrets/grafana-admin-password.tmp" "$secrets/grafana-admin-password"
        log "Grafana's sign-in: user admin, password in run/secrets/grafana-admin-password (not shown)"
    fi
    add_compose_profile monitoring
    unlock_operator
}
