#!/usr/bin/env bash
# The whole test suite: set-up, type-check (the build), lint, then every unit, conformance and
# end-to-end test under node's test runner. Ends with the line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

failed_extra=0
passed_extra=0
if npx biome lint src test bench >/tmp/kubicle-lint.log 2>&1; then
  echo "lint: ok"; passed_extra=$((passed_extra + 1))
else
  cat /tmp/kubicle-lint.log; echo "lint: FAILED"; failed_extra=$((failed_extra + 1))
fi

files=$(find dist -name '*.test.js' | sort)
out=$(mktemp)
# Tests that start servers use distinct ports and data dirs, but share 2 cores: run files two at a time.
node --test --test-concurrency=2 --test-timeout=300000 --test-reporter=spec $files 2>&1 | tee "$out"
pass=$(grep -E '^ℹ pass [0-9]+' "$out" | awk '{print $3}')
fail=$(grep -E '^ℹ fail [0-9]+' "$out" | awk '{print $3}')
cancelled=$(grep -E '^ℹ cancelled [0-9]+' "$out" | awk '{print $3}')
pass=$(( ${pass:-0} + passed_extra ))
fail=$(( ${fail:-0} + ${cancelled:-0} + failed_extra ))
if [ -z "$files" ]; then fail=$((fail + 1)); fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
