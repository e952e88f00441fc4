#!/usr/bin/env bash
# The manifest property at length: 10,000 mutated manifests through `podnet apply` (no traceback,
# no hang, no partial apply, no error without a location), then the 10 MB hostile inputs with
# their time and memory. Usage: scripts/fuzz-manifests.sh [COUNT] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s setup
.venv/bin/python scripts/fuzz_manifests.py --count "${1:-10000}" --seed "${2:-1}"
.venv/bin/python scripts/fuzz_manifests.py --large
