#!/usr/bin/env bash
# The whole test suite: installs the checking tools the tests need (as root, when missing),
# fetches the Debian packages the example recipes use, then runs every test.
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/fetch-debs.sh >/dev/null
cargo test --locked "$@"
