#!/usr/bin/env bash
# Builds the release binaries, sets up the Slack Bolt for Python peer's venv,
# and runs the benchmarks: `bench all --quick` by default (under 3 minutes
# once built), or whatever arguments are given.
#
#   scripts/bench.sh                       # bench all --quick
#   scripts/bench.sh all                   # the full run
#   scripts/bench.sh ack --backend sqlite  # one section, one backend
#   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/bench.sh
#                                          # PostgreSQL too (a fresh database, dropped after)
#
# The server runs as a child process pinned to CPU 0 (taskset), the load
# generator and the fake Slack Web API in the bench process on CPU 1: on a
# machine with other work running, the figures move; each table prints the load
# average at its start and end.
#
# Environment:
#   CARGO_TARGET_DIR   build directory (default: target); the venv goes in $CARGO_TARGET_DIR/bolt-venv
#   PYTHON             interpreter for the venv (default: python3; 3.9 or later)
#   BENCH_SKIP_BUILD=1 use the binaries already built
#   BENCH_KEEP=1       keep the scratch directories (server logs, configs, the peer's database)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
venv=$target/bolt-venv
req=$root/bench/bolt_peer/requirements.txt

if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then
    echo "building release binaries (accessbot, bench)…" >&2
    cargo build --release --bin accessbot --bin bench
fi

# The peer's venv, rebuilt when requirements.txt changes.
if [[ ! -x $venv/bin/gunicorn ]] || ! cmp -s "$req" "$venv/requirements.txt"; then
    echo "setting up the Bolt peer's venv in $venv…" >&2
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
fi

if [[ $# -eq 0 ]]; then
    set -- all --quick
fi
case "$1" in
    ack | all) set -- "$@" --peer-venv "$venv" ;;
esac
exec "$target/release/bench" "$@"
