#!/usr/bin/env bash
# The whole test suite, QEMU boot tests included: installs the tools the tests need (as root,
# when missing), fetches the Debian packages the example recipes use and the current Debian
# cloud kernel, then runs every test. Extra arguments go to `cargo test` (a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/fetch-debs.sh >/dev/null
BAKE_KERNEL=$(scripts/fetch-kernel.sh)
export BAKE_KERNEL
cargo test --locked "$@"
