#!/usr/bin/env bash
# Runs every tap test and ends with the plain line CI reads: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/sipalg-tap.XXXXXX)
trap 'rm -f "$log"' EXIT
npx tap --reporter=tap "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -aE '^# \{ total: ' "$log" | tail -n 1)
num() { sed -nE "s/.*[{ ]$1: ([0-9]+).*/\1/p" <<<"$summary"; }
total=$(num total); pass=$(num pass); fail=$(num fail)
total=${total:-0}; pass=${pass:-0}; fail=${fail:-0}
if [ "$total" -eq 0 ]; then echo "no tests ran"; rc=1; fi
# Anything neither passed nor skipped/todo counts as failed so a crash never looks green.
skip=$(num skip); todo=$(num todo)
other=$(( total - pass - fail - ${skip:-0} - ${todo:-0} ))
[ "$other" -gt 0 ] && fail=$(( fail + other ))
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
  echo "every test passed, but tap failed: coverage below the thresholds in package.json (see the summary above)?"
  fail=1
fi
# What failed and where, last, so the tail of a CI log names it.
[ "$fail" -gt 0 ] && node test/failures.mjs "$log"
echo "$pass passed, $fail failed"
exit "$rc"
