#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks that the simulation-only
# build needs no libtorch, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
echo "== simulation-only build (no libtorch)" >&2
cargo build --locked --no-default-features
echo "== tests" >&2
cargo test --locked --workspace "$@"
