#!/usr/bin/env bash
# Soak run: mixed traffic (chat requests, approvals, denials, cancels, three-step
# approvals, API creates and messages, App Home opens, reads) against two replicas
# of the real binary (release build) on a fresh PostgreSQL database, with the fake
# Slack failing at random (429 with Retry-After, 500, transient ok:false, answers
# after the client gave up). Then the invariants are checked from the database and
# the fake Slack's record, and a summary is printed: requests, decisions,
# deliveries, duplicates (must be 0), lost (must be 0), max RSS of each replica.
#
#   scripts/soak.sh 30m          # DURATION: 90s, 3m, 1h, or seconds; default 30m
#
# Environment: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres;
# a database accessbot_test_<uuid> is created there and dropped afterwards),
# SOAK_WORKERS (load loops, default 2), SOAK_PAUSE_MS (pause between operations,
# default 400), FAULTS_SEED (faults and traffic mix). Exits non-zero when an
# invariant fails. The driver is the ignored test tests/it/soak.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-30m}"
if ! [[ "$duration" =~ ^([0-9]+)([smh]?)$ ]]; then
  echo "usage: $0 DURATION   (e.g. 30m, 180s, 1h)" >&2
  exit 2
fi
n="${BASH_REMATCH[1]}"
case "${BASH_REMATCH[2]}" in
  h) secs=$((n * 3600)) ;;
  m) secs=$((n * 60)) ;;
  *) secs=$n ;;
esac

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/accessbot-target}"
if command -v psql >/dev/null && ! psql "$TEST_DATABASE_URL" -tAc 'SELECT 1' >/dev/null 2>&1; then
  echo "soak: PostgreSQL is unreachable at $TEST_DATABASE_URL" >&2
  exit 1
fi

echo "soak: building the release binary and test driver"
cargo test --release --test it --no-run
echo "soak: ${secs}s of traffic, then the invariants"
SOAK_SECONDS="$secs" exec cargo test --release --test it soak::soak -- --ignored --nocapture --test-threads 1
