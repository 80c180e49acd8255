#!/usr/bin/env bash
# Loads and exports ROWS rows (default 1,000,000) with two policy columns,
# directly into a plaintext table and through pgseal into an encrypted one,
# in text and binary format, in one run; prints the times and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec go run ./internal/devtools/copybench -rows "${ROWS:-1000000}"
