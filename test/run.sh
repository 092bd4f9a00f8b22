#!/usr/bin/env bash
# All tests, on a fresh Debian 12 machine as root: installs what is missing (.ci/setup, npm ci),
# type-checks, builds, runs every vitest project (unit, component, e2e) and prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
[ -d node_modules/vitest ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
npm run --silent typecheck
node packaging/build.mjs
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || true
exit $status
