#!/usr/bin/env bash
# Build a local stand-in for the python:3.11-slim base image, for machines where no container
# registry answers (so `podman pull python:3.11-slim` cannot work):
#
#   debootstrap --variant=minbase a Debian bookworm root with python3 (3.11), python3-venv,
#   python-is-python3 and ca-certificates; copy in this machine's CA bundle and /etc/pip.conf
#   (so pip inside the build reaches PyPI the way this machine does); `podman import` it.
#
# Usage: scripts/make_base_image.sh [--force] [IMAGE]
#   IMAGE    name of the image to create (default localhost/llm-gateway-base:bookworm-python3.11).
#            Build the gateway on it with
#              podman build --pull=never --build-arg PYTHON_IMAGE=IMAGE -t llm-gateway:local .
#   --force  rebuild even if IMAGE already exists.
#
# Cached by name: when IMAGE already exists in podman's local store it is reused and nothing is
# built. Parallel runs are serialised with a lock; the second one then finds the image.
#
# Environment:
#   DEBIAN_MIRROR  Debian mirror for debootstrap (default: the http(s) mirror apt uses for
#                  bookworm on this machine, from /etc/apt/sources.list*, else deb.debian.org)
#   DEBIAN_SUITE   default bookworm (its python3 is 3.11, as the Dockerfile expects)
#   WORK_DIR       where the root filesystem is assembled (default /var/tmp; about 250 MB)
#
# Needs root, debootstrap, podman and a reachable Debian mirror; takes about two minutes.
# Exit status: 0 image present (built or reused); 1 the build failed; 77 it cannot be built on
# this machine (not root, or debootstrap/podman missing) - the message says why.
set -euo pipefail

DEFAULT_IMAGE="localhost/llm-gateway-base:bookworm-python3.11"
SUITE="${DEBIAN_SUITE:-bookworm}"
PACKAGES="python3,python3-venv,python-is-python3,ca-certificates"
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CONTAINER_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
LOCK_FILE="${TMPDIR:-/tmp}/llm-gateway-make-base-image.lock"

log() { printf '[make_base_image] %s\n' "$*"; }
die() { printf '[make_base_image] ERROR: %s\n' "$*" >&2; exit 1; }
cannot() { printf '[make_base_image] CANNOT BUILD: %s\n' "$*" >&2; exit 77; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

force=0
image=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) force=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [[ -z "$image" ]] || die "only one IMAGE may be given"; image="$1" ;;
    esac
    shift
done
image="${image:-$DEFAULT_IMAGE}"

command -v podman >/dev/null 2>&1 || cannot "podman is not installed (apt-get install podman)"

image_exists() { podman image exists "$image"; }

if [[ "$force" == 0 ]] && image_exists; then
    log "reusing existing local image $image"
    exit 0
fi

[[ "$(id -u)" == 0 ]] || cannot "debootstrap needs root (run as root, or build $image elsewhere)"
DEBOOTSTRAP="$(command -v debootstrap || true)"
[[ -n "$DEBOOTSTRAP" || ! -x /usr/sbin/debootstrap ]] || DEBOOTSTRAP=/usr/sbin/debootstrap
[[ -n "$DEBOOTSTRAP" ]] || cannot "debootstrap is not installed (apt-get install debootstrap)"

# The first http(s) mirror apt uses for $SUITE (deb822 .sources stanzas, then one-line .list
# entries); empty when there is none.
apt_mirror() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^[ \t]*#/) continue
                    if ($i ~ /^Types:/) types = $i
                    if ($i ~ /^URIs:/) uris = $i
                    if ($i ~ /^Suites:/) suites = $i
                }
                if (types ~ /[ \t]deb([ \t]|$)/ && (" " suites " ") ~ ("[ \t]" suite "[ \t]")) {
                    n = split(uris, u, /[ \t]+/)
                    for (j = 2; j <= n; j++) if (u[j] ~ /^https?:\/\//) { print u[j]; exit }
                }
            }' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -e 's/\[[^]]*\]//' "$file" | awk -v suite="$SUITE" \
            '$1 == "deb" && $2 ~ /^https?:\/\// && $3 == suite { print $2 }'
    done
}

mirror="${DEBIAN_MIRROR:-$(apt_mirror | head -n 1)}"
mirror="${mirror:-http://deb.debian.org/debian}"

# One build at a time; whoever waited re-checks the cache first.
exec 9>"$LOCK_FILE"
if ! flock -n 9; then
    log "another build of a base image is running; waiting for it (lock $LOCK_FILE)"
    flock 9
    if [[ "$force" == 0 ]] && image_exists; then
        log "reusing local image $image built meanwhile"
        exit 0
    fi
fi

work_root="${WORK_DIR:-/var/tmp}"
mkdir -p "$work_root"
rootfs="$(mktemp -d "$work_root/llm-gateway-base.XXXXXX")"
cleanup() { rm -rf --one-file-system "$rootfs"; }
trap cleanup EXIT

started=$SECONDS
log "building $image: debootstrap --variant=minbase $SUITE from $mirror into $rootfs"
log "packages: $PACKAGES (this takes about two minutes)"
# debootstrap prints one line per step (I: Retrieving..., I: Unpacking...): that is the progress.
if ! "$DEBOOTSTRAP" --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror"; then
    if [[ -f "$rootfs/debootstrap/debootstrap.log" ]]; then
        tail -n 20 "$rootfs/debootstrap/debootstrap.log" >&2 || true
    fi
    die "debootstrap of $SUITE from $mirror failed (set DEBIAN_MIRROR to a reachable Debian mirror)"
fi
log "debootstrap done after $((SECONDS - started))s"

# This machine's CA bundle: it may hold a corporate/proxy CA that PyPI is reached through.
if [[ -f "$HOST_CA_BUNDLE" ]]; then
    install -D -m 0644 "$HOST_CA_BUNDLE" "$rootfs$CONTAINER_CA_BUNDLE"
    log "copied $HOST_CA_BUNDLE"
fi
# pip's index and proxy settings as on this machine (no credentials are expected in it).
if [[ -f /etc/pip.conf ]]; then
    install -D -m 0644 /etc/pip.conf "$rootfs/etc/pip.conf"
    log "copied /etc/pip.conf"
fi

# Slim it down: no package caches or lists in the image.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/var/log/* "$rootfs"/debootstrap "$rootfs"/usr/share/doc/* \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*

[[ -x "$rootfs/usr/bin/python" ]] || die "python is missing from the new root (python-is-python3 not installed?)"

log "importing the root filesystem as $image"
tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
    --change "ENV PIP_CERT=$CONTAINER_CA_BUNDLE" \
    --change "ENV LANG=C.UTF-8" \
    --change 'CMD ["python3"]' \
    --message "Debian $SUITE minbase + python3 (scripts/make_base_image.sh)" \
    - "$image" >/dev/null || die "podman import failed"

podman image exists "$image" || die "podman import did not create $image"
log "built $image in $((SECONDS - started))s ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
