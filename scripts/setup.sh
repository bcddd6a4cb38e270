#!/usr/bin/env bash
# Prepare a checkout to run the gateway natively (start.sh can also use Docker):
#   * .venv with python3 >= 3.11: requirements.lock, then the project itself (editable, no deps);
#   * .env (mode 600) with a generated GATEWAY_MASTER_KEY and GATEWAY_PORT, and the dashboard's
#     UI_USERNAME/UI_PASSWORD (added when missing, never printed);
#   * config/config.yaml copied from config/config.example.yaml;
#   * data/ and logs/; then `python -m gateway check-config`.
# Existing .env and config/config.yaml are kept unless --force (which backs them up as .bak).
#   * --profile small|medium|large: workers and container limits in .env (scripts/appliance.sh);
#   * --with-chat / --with-monitoring: the client key of Open WebUI, the secrets of Prometheus
#     and Grafana, and the compose profiles that start them.
# Asks nothing; safe to run again. Writes .env and config/config.yaml under the operator lock
# (run/gateway.lock, see scripts/lib.sh), so it never interleaves with virtual-key.sh or start.sh.
#
# Environment (mostly for tests and CI):
#   PYTHON                        interpreter that creates .venv (default, or if PYTHON is not
#                                 Python >= 3.11: the first of python3, python3.13, .12, .11 that is)
#   GATEWAY_SETUP_VENV_ARGS       extra arguments for `python -m venv` (e.g. --system-site-packages)
#   GATEWAY_SETUP_PIP_ARGS        extra arguments for every `pip install` (e.g. --no-index --no-build-isolation)
#   GATEWAY_SETUP_SITE_PACKAGES   colon-separated site-packages directories to reuse in a new .venv
#                                 (written to a .pth file; --system-site-packages cannot see the
#                                 packages of a virtualenv, only those of the base interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TAG=setup
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
# shellcheck source=scripts/appliance.sh
source "$ROOT/scripts/appliance.sh"

usage() {
    cat <<'EOF'
Usage: ./setup.sh [--port N | --random-ports] [--profile small|medium|large] [--with-chat]
                  [--with-monitoring] [--force] [--dev]

Creates .venv, .env (master key, port), config/config.yaml, data/ and logs/.

  --port N           port the gateway listens on (default 2906), written to .env as GATEWAY_PORT
  --random-ports     pick a free port in 49152-65535 instead
  --profile NAME     resources: small (1 worker, 1 CPU, 384 MiB), medium (2 workers, 2 CPUs,
                     768 MiB), large (4 workers, 4 CPUs, 1536 MiB); GATEWAY_WORKERS, GATEWAY_CPUS
                     and GATEWAY_MEMORY in .env. Several workers share state through Redis.
  --with-chat        a client key for Open WebUI (shown once, OPENWEBUI_API_KEY in .env) and the
                     compose profile chat
  --with-monitoring  an admin key for Prometheus and Grafana's password (files in run/secrets/,
                     not shown) and the compose profile monitoring
  --force            overwrite an existing .env and config/config.yaml (old ones are kept as .bak)
  --dev              also install the test tools (the `test` extra: pytest, openai, anthropic; and wheel)
  -h, --help         show this help

The master key is written to .env (GATEWAY_MASTER_KEY) and never printed; so is the dashboard's
sign-in (UI_USERNAME=admin and a generated UI_PASSWORD, added to an existing .env that lacks them).
EOF
}

PORT=""
RANDOM_PORTS=0
FORCE=0
DEV=0
PROFILE=""
WITH_CHAT=0
WITH_MONITORING=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port) [[ $# -ge 2 ]] || { usage >&2; die "--port needs a value"; }; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#--port=}"; shift ;;
        --random-ports | --random-port) RANDOM_PORTS=1; shift ;;
        --profile) [[ $# -ge 2 ]] || { usage >&2; die "--profile needs a value"; }; PROFILE="$2"; shift 2 ;;
        --profile=*) PROFILE="${1#--profile=}"; shift ;;
        --with-chat) WITH_CHAT=1; shift ;;
        --with-monitoring) WITH_MONITORING=1; shift ;;
        --force) FORCE=1; shift ;;
        --dev) DEV=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; printf '[setup] ERROR: unknown argument: %s\n' "$1" >&2; exit 2 ;;
    esac
done
if [[ -n "$PORT" ]]; then
    if ! [[ "$PORT" =~ ^[0-9]{1,5}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
        die "--port must be a number from 1 to 65535, not '$PORT'"
    fi
    PORT=$((10#$PORT))
    [[ "$RANDOM_PORTS" == 0 ]] || die "use either --port or --random-ports, not both"
fi

if [[ -n "$PROFILE" ]] && ! profile_sizes "$PROFILE" >/dev/null; then
    die "--profile must be small, medium or large, not '$PROFILE'"
fi

# ------------------------------------------------------------------ Python
find_python() {
    local candidates=() c version found=()
    [[ -z "${PYTHON:-}" ]] || candidates=("$PYTHON")
    candidates+=(python3 python3.13 python3.12 python3.11)
    for c in "${candidates[@]}"; do
        command -v "$c" >/dev/null 2>&1 || continue
        version="$("$c" -c 'import platform; print(platform.python_version())' 2>/dev/null)" || continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            BASE_PY="$(command -v "$c")"
            BASE_PY_VERSION="$version"
            if [[ -n "${PYTHON:-}" && "$c" != "$PYTHON" ]]; then
                warn "PYTHON=$PYTHON is not a usable Python >= 3.11: using $c instead"
            fi
            return 0
        fi
        found+=("$c $version")
    done
    if [[ ${#found[@]} -gt 0 ]]; then
        die "Python 3.11 or newer is required, found only: ${found[*]}. Install it (e.g. apt-get install python3.11 python3.11-venv) or point PYTHON=/path/to/python3.11 at one."
    fi
    die "Python 3.11 or newer is required and none was found${PYTHON:+ (nor is PYTHON=$PYTHON one)}. Install it (e.g. apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.11."
}

find_python
log "using Python $BASE_PY_VERSION ($BASE_PY)"

mkdir -p data logs run
log "directories data/, logs/ and run/ are in place"

# ------------------------------------------------------------------ .env
pick_port() {
    "$BASE_PY" - <<'EOF'
import random, socket, sys
# Prefer ports the kernel never hands out as ephemeral (client) ports, so that no outgoing
# connection can hold ours when the gateway starts (Linux default: 32768-60999).
ports = range(49152, 65536)
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
        low, high = map(int, handle.read().split())
    ports = [p for p in ports if not low <= p <= high] or ports
except (OSError, ValueError):
    pass
for _ in range(500):
    port = random.choice(ports)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                continue
    except OSError:
        continue
    print(port)
    sys.exit(0)
sys.exit("no free port found in 49152-65535")
EOF
}

port_busy() {
    "$BASE_PY" - "$1" <<'EOF'
import socket, sys
with socket.socket() as s:
    s.settimeout(0.3)
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

write_env() {
    # mode 600 from the first byte, renamed into place (scripts/envfile.py)
    "$BASE_PY" "$ROOT/scripts/envfile.py" new "$ENV_FILE" "$1"
}

lock_operator "./setup.sh (writing .env and config/config.yaml)"
if [[ -f "$ENV_FILE" && "$FORCE" == 0 ]]; then
    log "kept the existing .env (use --force to regenerate it; the old one is then saved as .env.bak)"
    if [[ -n "$PORT" || "$RANDOM_PORTS" == 1 ]]; then
        warn "--port/--random-ports ignored because .env was kept: GATEWAY_PORT there is $(env_get GATEWAY_PORT)"
    fi
    if [[ "$(stat -c '%a' "$ENV_FILE" 2>/dev/null || echo 600)" != 600 ]]; then
        chmod 600 "$ENV_FILE"
        log "set .env to mode 600 (it holds secrets)"
    fi
    [[ -n "$(env_get GATEWAY_MASTER_KEY)" ]] || warn ".env has no GATEWAY_MASTER_KEY: only client keys will work (./setup.sh --force writes a new .env)"
else
    if [[ -f "$ENV_FILE" ]]; then
        rm -f "$ROOT/.env.bak"
        (umask 077 && cp "$ENV_FILE" "$ROOT/.env.bak")
        chmod 600 "$ROOT/.env.bak"
        log "backed up the old .env to .env.bak (mode 600)"
    fi
    if [[ "$RANDOM_PORTS" == 1 ]]; then
        PORT="$(pick_port)" || die "could not find a free port in 49152-65535"
        log "picked free port $PORT"
    fi
    PORT="${PORT:-2906}"
    if port_busy "$PORT"; then
        warn "port $PORT is already in use on 127.0.0.1: start.sh will fail until it is free (or re-run with --force --port N / --random-ports)"
    fi
    write_env "$PORT"
    log "wrote .env (mode 600): GATEWAY_PORT=$PORT and a new master key (GATEWAY_MASTER_KEY in .env; not shown)"
fi

# The dashboard's sign-in (/ui): UI_USERNAME (default admin) and a generated UI_PASSWORD, each
# written only when .env has none (the values there are kept), never printed.
ensure_ui_credentials() {
    if [[ -z "$(env_get UI_USERNAME)" ]]; then
        printf 'admin' | "$BASE_PY" "$ROOT/scripts/envfile.py" set "$ENV_FILE" UI_USERNAME
        log "wrote UI_USERNAME=admin to .env (the dashboard's sign-in at /ui)"
    fi
    if [[ -z "$(env_get UI_PASSWORD)" ]]; then
        "$BASE_PY" -c 'import secrets; print(secrets.token_urlsafe(24))' \
            | "$BASE_PY" "$ROOT/scripts/envfile.py" set "$ENV_FILE" UI_PASSWORD
        log "wrote a generated UI_PASSWORD to .env (the dashboard's password; not shown: read it there)"
    fi
}
ensure_ui_credentials
[[ -z "$PROFILE" ]] || apply_profile "$PROFILE"

# ------------------------------------------------------------------ config/config.yaml
CONFIG="$ROOT/config/config.yaml"
EXAMPLE="$ROOT/config/config.example.yaml"
[[ -f "$EXAMPLE" ]] || die "missing $EXAMPLE (is this a complete checkout?)"
if [[ -f "$CONFIG" && "$FORCE" == 0 ]]; then
    log "kept the existing config/config.yaml (use --force to replace it; the old one is then saved as config/config.yaml.bak)"
else
    if [[ -f "$CONFIG" ]]; then
        cp -p "$CONFIG" "$CONFIG.bak"
        log "backed up the old config/config.yaml to config/config.yaml.bak"
    fi
    tmp="$(mktemp "$ROOT/config/.config.yaml.XXXXXX")"
    cp "$EXAMPLE" "$tmp"
    workers="$(env_get GATEWAY_WORKERS)"
    if [[ "${workers:-1}" =~ ^[0-9]+$ ]] && ((workers > 1)); then
        printf '%s' "$REDIS_RUNTIME_BLOCK" >>"$tmp"
        log "GATEWAY_WORKERS=$workers: the new config keeps limits, cooldowns and spend in Redis (storage.runtime)"
    fi
    chmod 644 "$tmp"
    mv -f "$tmp" "$CONFIG"
    log "wrote config/config.yaml from config/config.example.yaml"
fi
unlock_operator

# ------------------------------------------------------------------ .venv and packages
VENV_ARGS=()
read -r -a VENV_ARGS <<<"${GATEWAY_SETUP_VENV_ARGS:-}" || true
PIP_ARGS=()
read -r -a PIP_ARGS <<<"${GATEWAY_SETUP_PIP_ARGS:-}" || true

venv_ok() {
    [[ -x "$VENV_PY" ]] && "$VENV_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

if venv_ok; then
    log "reusing the existing .venv ($("$VENV_PY" -c 'import platform; print(platform.python_version())'))"
else
    if [[ -e .venv ]]; then
        log "the existing .venv is broken or older than Python 3.11: recreating it"
        rm -rf .venv
    fi
    "$BASE_PY" -c 'import venv, ensurepip' 2>/dev/null \
        || die "$BASE_PY cannot create virtualenvs (no venv/ensurepip module): install python3-venv (Debian/Ubuntu: apt-get install python3-venv) and re-run"
    log "creating .venv${VENV_ARGS[*]:+ (python -m venv ${VENV_ARGS[*]})}"
    "$BASE_PY" -m venv ${VENV_ARGS[@]+"${VENV_ARGS[@]}"} .venv || die "python -m venv failed"
    if [[ -n "${GATEWAY_SETUP_SITE_PACKAGES:-}" ]]; then
        purelib="$("$VENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        tr ':' '\n' <<<"$GATEWAY_SETUP_SITE_PACKAGES" | sed '/^$/d' >"$purelib/_gateway_reused_site.pth"
        log "reusing packages from: $GATEWAY_SETUP_SITE_PACKAGES"
    fi
fi

# pip with its chatter reduced to one line per package; the full output goes to logs/setup-pip.log.
PIP_LOG="$ROOT/logs/setup-pip.log"
pip_install() {
    local what="$1" rc
    shift
    log "pip: installing $what"
    printf '\n=== %s: pip install %s\n' "$(date '+%F %T')" "$*" >>"$PIP_LOG"
    set +e
    "$VENV_PY" -m pip install --disable-pip-version-check --progress-bar off \
        ${PIP_ARGS[@]+"${PIP_ARGS[@]}"} "$@" 2>&1 | tee -a "$PIP_LOG" | awk -v tag="[$TAG]" '
            /^Requirement already satisfied/ { ok++; next }
            /^Processing / { sub(/^Processing .*\//, "Processing "); print tag "   " $0; fflush(); next }
            /^(Collecting|Obtaining|ERROR|error:)/ { print tag "   " $0; fflush(); next }
            /^Successfully installed/ { n = split($0, a, " "); print tag "   installed " (n - 2) " package(s)"; fflush(); next }
            END { if (ok) print tag "   " ok " requirement(s) already satisfied" }'
    rc=${PIPESTATUS[0]}
    set -e
    if [[ "$rc" != 0 ]]; then
        printf '[%s] pip failed (exit %s); last lines of %s:\n' "$TAG" "$rc" "${PIP_LOG#"$ROOT"/}" >&2
        tail -n 30 "$PIP_LOG" >&2
        die "installing $what failed"
    fi
}

STAMP="$ROOT/.venv/.gateway-setup-stamp"
lock_hash="$(cat requirements.lock pyproject.toml | "$BASE_PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
stamp_ok() {
    local stored_hash="" stored_dev=0
    [[ -f "$STAMP" ]] || return 1
    read -r stored_hash stored_dev <"$STAMP" || true
    [[ "$stored_hash" == "$lock_hash" ]] || return 1
    ((${stored_dev:-0} >= DEV)) || return 1
    "$VENV_PY" -c 'import importlib.metadata as m, granian, falcon; m.version("llm-gateway")' 2>/dev/null
}

if stamp_ok; then
    log "packages are up to date (requirements.lock and pyproject.toml unchanged since the last setup)"
else
    rm -f "$STAMP"
    pip_install "pinned runtime dependencies (requirements.lock)" -r requirements.lock
    pip_install "the gateway itself (editable)" --no-deps -e .
    if [[ "$DEV" == 1 ]]; then
        mapfile -t TEST_REQS < <("$VENV_PY" -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["test"]))')
        [[ ${#TEST_REQS[@]} -gt 0 ]] || die "no [project.optional-dependencies] test in pyproject.toml"
        pip_install "the test tools (${TEST_REQS[*]})" "${TEST_REQS[@]}"
        # wheel lets `pip install --no-build-isolation -e .` work offline with this venv's setuptools
        # (tests/integration/test_scripts.py builds a venv that way, from this one's packages).
        pip_install "build tools for offline editable installs (wheel)" wheel
    fi
    printf '%s %s\n' "$lock_hash" "$DEV" >"$STAMP"
fi

# ------------------------------------------------------------------ check
log "checking config/config.yaml"
set +e
check_out="$("$VENV_PY" -m gateway check-config 2>&1)"
rc=$?
set -e
printf '%s\n' "$check_out" | sed "s/^/[$TAG]   /"
[[ "$rc" == 0 ]] || die "config/config.yaml is not valid (exit $rc); fix the errors above, then run ./setup.sh again"
check_workers_store
[[ "$WITH_CHAT" == 0 ]] || with_chat
[[ "$WITH_MONITORING" == 0 ]] || with_monitoring

read_listen
cat <<EOF
[$TAG] done. Next steps:
[$TAG]   1. Put your provider keys in .env, e.g. OPENAI_API_KEY=sk-... (the gateway's own master key
[$TAG]      is already there as GATEWAY_MASTER_KEY; it is not printed here).
[$TAG]   2. ./start.sh                  starts the gateway at $BASE_URL/v1 and waits until it is healthy
[$TAG]   3. ./virtual-key.sh --id myapp creates a client key for an application (shown once, saved in .env)
[$TAG]   4. ./stop.sh                   stops it
[$TAG]   The dashboard is at $BASE_URL/ui (sign in with UI_USERNAME and UI_PASSWORD from .env).
[$TAG]   Edit config/config.yaml (providers, aliases, clients) at any time: the running gateway reloads it.
EOF
