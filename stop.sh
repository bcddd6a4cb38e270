#!/usr/bin/env bash
# Thin wrapper: see scripts/stop.sh.
cd "$(dirname "${BASH_SOURCE[0]}")" && exec bash scripts/stop.sh "$@"
