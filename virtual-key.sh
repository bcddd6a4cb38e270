#!/usr/bin/env bash
# Thin wrapper: see scripts/virtual-key.sh.
cd "$(dirname "${BASH_SOURCE[0]}")" && exec bash scripts/virtual-key.sh "$@"
