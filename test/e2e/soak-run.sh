#!/usr/bin/env bash
# `make soak`: the full soak (issue 5 item 5) — 1,000 short calls with random outcomes through the lab
# gateway, then every mapping must go and sipalg's RSS must be back near its start. Needs root (network
# namespaces), sipp, tcpdump, nft, conntrack, and a built tree (`npx tsc -p tsconfig.json` / `make build`).
#
#   test/e2e/soak-run.sh                      1,000 calls at 30 calls/s, seed 0x50a4
#   SOAK_CALLS=2000 SOAK_RATE=40 SOAK_SEED=7 test/e2e/soak-run.sh
#   SOAK_KEEP=1 ...                           keep the sipp work directory (plans, stats, error logs)
#
# The CI variant is the same test with its defaults (200 calls at 20/s): bash test/run.sh test/e2e/soak.test.ts
# Ends with the plain "N passed, N failed" line from test/run.sh; the "SOAK SUMMARY" comment has the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SOAK_CALLS="${SOAK_CALLS:-1000}"
export SOAK_RATE="${SOAK_RATE:-30}"
# sipp runs the calls for SOAK_CALLS/SOAK_RATE seconds, then timeouts and expiry take ~20 s more.
limit=$(( SOAK_CALLS / ${SOAK_RATE%.*} + 180 ))
exec bash test/run.sh --timeout="$limit" test/e2e/soak.test.ts
