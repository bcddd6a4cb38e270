#!/usr/bin/env bash
# Thin wrapper: see scripts/start.sh.
cd "$(dirname "${BASH_SOURCE[0]}")" && exec bash scripts/start.sh "$@"
