#!/usr/bin/env bash
# Create a client key ("virtual key") for an application:
#   * `python -m gateway add-client` writes only its sha256 hash into config/config.yaml;
#   * the key is printed once here and saved as VIRTUAL_KEY=... in .env (mode 600);
#   * a running gateway picks the new client up live; this script checks that with GET /v1/models.
# Writing the config and .env happens under the operator lock (run/gateway.lock, see
# scripts/lib.sh), so several virtual-key.sh at once each add their client and keep their key.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TAG=virtual-key
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

usage() {
    cat <<'EOF'
Usage: ./virtual-key.sh [--id NAME] [--providers a,b] [--rpm N] [--tpm N] [--admin]

Creates a client key, stores only its hash in config/config.yaml, prints the key once and
saves it in .env as VIRTUAL_KEY (replacing an earlier one there).

  --id NAME         client id (letters, digits, . _ -); default client-NNN
  --providers a,b   provider ids the client may use (default: all)
  --rpm N           requests per minute limit, at least 1 (leave it out for no limit)
  --tpm N           tokens per minute limit, at least 1 (leave it out for no limit)
  --admin           may call the admin API (writes admin: true for the client)
EOF
}

# check_limit FLAG VALUE: a limit is a whole number >= 1. 0 is refused rather than read as
# "unlimited" (or as "nothing allowed"): the config refuses 0 too (limits.* >= 1).
check_limit() {
    [[ "$2" =~ ^[0-9]+$ ]] || die "$1 must be a whole number, not '$2'"
    [[ "$2" =~ ^0*[1-9][0-9]*$ ]] || die "$1 must be at least 1 ($1 0 would block the client entirely; to set no limit, leave $1 out)"
}

ARGS=()
CLIENT_ID=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --id=* | --providers=* | --rpm=* | --tpm=*)
            # --flag=value: checked exactly as --flag value
            flag="${1%%=*}" value="${1#*=}"
            shift
            set -- "$flag" "$value" "$@" ;;
        --id | --providers | --rpm | --tpm)
            [[ $# -ge 2 && -n "$2" ]] || { usage >&2; die "$1 needs a value"; }
            [[ "$1" == --id ]] && CLIENT_ID="$2"
            if [[ "$1" == --rpm || "$1" == --tpm ]]; then
                check_limit "$1" "$2"
            fi
            ARGS+=("$1" "$2")
            shift 2 ;;
        --admin) ARGS+=("$1"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; printf '[%s] ERROR: unknown argument: %s\n' "$TAG" "$1" >&2; exit 2 ;;
    esac
done

[[ -x "$VENV_PY" ]] || die "no .venv here: run ./setup.sh first"
[[ -f "$ENV_FILE" ]] || die "no .env here: run ./setup.sh first"
[[ -f "$ROOT/config/config.yaml" ]] || die "no config/config.yaml here: run ./setup.sh first"

lock_operator "./virtual-key.sh"
label="a client"
[[ -z "$CLIENT_ID" ]] || label="client '$CLIENT_ID'"
log "creating $label in config/config.yaml (only the key's hash is stored there)"
errf="$(mktemp)"
trap 'rm -f "$errf"' EXIT
set +e
KEY="$("$VENV_PY" -m gateway add-client ${ARGS[@]+"${ARGS[@]}"} 2>"$errf")"
rc=$?
set -e
if [[ "$rc" != 0 ]]; then
    sed "s/^/[$TAG]   /" "$errf" >&2
    die "could not create the client (exit $rc)"
fi
# a warning of add-client (say, the client directory could not be read to check the id)
if [[ -s "$errf" ]]; then
    sed "s/^/[$TAG]   /" "$errf" >&2
fi
KEY="$(printf '%s\n' "$KEY" | tail -n 1 | tr -d '[:space:]')"
[[ "$KEY" == sk-* ]] || die "add-client printed no key"
if [[ -z "$CLIENT_ID" ]]; then
    # add-client chose the id: find the entry that holds this key's hash.
    CLIENT_ID="$(printf '%s' "$KEY" | "$VENV_PY" -c '
import hashlib, sys, yaml
digest = "sha256:" + hashlib.sha256(sys.stdin.read().strip().encode()).hexdigest()
with open(sys.argv[1], encoding="utf-8") as handle:
    clients = (yaml.safe_load(handle) or {}).get("api_keys") or []
print(next((c.get("id", "") for c in clients if isinstance(c, dict) and c.get("key_hash") == digest), ""))
' "$ROOT/config/config.yaml" 2>/dev/null)" || CLIENT_ID=""
    CLIENT_ID="${CLIENT_ID:-(new)}"
fi

# Save VIRTUAL_KEY=... in .env (mode 600, atomic; scripts/envfile.py). The key travels on stdin,
# never on a command line.
printf '%s' "$KEY" | "$VENV_PY" "$ROOT/scripts/envfile.py" set "$ENV_FILE" VIRTUAL_KEY
unlock_operator

log "created client '$CLIENT_ID'. Its key (shown only this once; also saved in .env as VIRTUAL_KEY):"
printf '%s\n' "$KEY"
log "use it as the API key of an OpenAI client, with base_url pointing at the gateway's /v1"

# Is a gateway answering? Then check that it already accepts the new key.
read_listen
if http_ok "$BASE_URL/health/readiness"; then
    log "checking the new key against the running gateway ($BASE_URL/v1/models)"
    check_s="${GATEWAY_KEY_CHECK_TIMEOUT:-15}"
    start=$SECONDS
    while ((SECONDS - start < check_s)); do
        if http_ok "$BASE_URL/v1/models" "$KEY"; then
            log "OK: the running gateway accepts the new key"
            exit 0
        fi
        sleep 0.2
    done
    die "the running gateway did not accept the new key within ${check_s}s (the client is saved; see logs/gateway.log: is it serving this config/config.yaml?)"
else
    log "the gateway is not running; it will accept the key once started (./start.sh)"
fi
