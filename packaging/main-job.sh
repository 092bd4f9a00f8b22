#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine as root: install what is missing, build, then run a
# container in a kata-ts VM under a private containerd and print its output (packaging/main-job.ts).
# --keep: leave that containerd running to try ctr by hand, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup >&2
[ -d node_modules/vitest ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund >&2
node packaging/build.mjs >&2
exec node dist/main-job.cjs "$@"
