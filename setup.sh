#!/usr/bin/env bash
# Thin wrapper: see scripts/setup.sh.
cd "$(dirname "${BASH_SOURCE[0]}")" && exec bash scripts/setup.sh "$@"
