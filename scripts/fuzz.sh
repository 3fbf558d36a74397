#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ and runs each for a while, one after the other.
#
#   scripts/fuzz.sh [seconds-per-target] [target…]
#
#   scripts/fuzz.sh                 # every target, 600 s each
#   scripts/fuzz.sh 30              # a smoke run
#   scripts/fuzz.sh 3600 scim_filter config
#
# Targets: signature, slash_command, interaction, blocks, scim_filter, config
# (`cargo fuzz list`). Each run grows its corpus in fuzz/corpus/<target> (seeded
# from fuzz/seeds/<target> when there is one, with the dictionary
# fuzz/dicts/<target>.dict when there is one); a crash, leak, timeout or OOM is
# saved in fuzz/artifacts/<target>/ and replays with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
# Every crash becomes a regression test (tests/fuzz_regressions.rs) and gets fixed.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer's sanitizer flags
# are nightly-only; on a stable toolchain RUSTC_BOOTSTRAP=1 lets them through.
#
# Environment:
#   FUZZ_TARGET_DIR   build directory (default /tmp/accessbot-fuzz-target; kept
#                     apart from the main build, whose flags differ)
#   FUZZ_TIMEOUT      seconds one input may take before it counts as a hang (default 10)
#   FUZZ_JOBS         parallel libFuzzer workers per target (default 1)
#   FUZZ_BUILD_ARGS   extra `cargo fuzz build` arguments, e.g. "--codegen-units 16"
#   FUZZ_ARGS         extra libFuzzer arguments, e.g. "-rss_limit_mb=4096"
#
# Exit status: 0 when no target found anything, 1 when one did, 2 when a build failed.

set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-600}"
[ $# -gt 0 ] && shift
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: $0 [seconds-per-target] [target…]" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 2
fi

export RUSTC_BOOTSTRAP=1
target_dir="${FUZZ_TARGET_DIR:-/tmp/accessbot-fuzz-target}"
timeout="${FUZZ_TIMEOUT:-10}"
jobs="${FUZZ_JOBS:-1}"
read -r -a build_args <<<"${FUZZ_BUILD_ARGS:-}"
read -r -a extra_args <<<"${FUZZ_ARGS:-}"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${targets[*]}"
cargo fuzz build --target-dir "$target_dir" "${build_args[@]}"

summary=()
found=0
for t in "${targets[@]}"; do
  corpus="fuzz/corpus/$t"
  artifacts="fuzz/artifacts/$t"
  log="$artifacts/last-run.log"
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus")
  [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
  args=(-max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 -artifact_prefix="$artifacts/")
  [ -f "fuzz/dicts/$t.dict" ] && args+=(-dict="fuzz/dicts/$t.dict")
  if [ "$jobs" -gt 1 ]; then
    args+=(-fork="$jobs")
  fi
  marker="$artifacts/.started"
  touch "$marker"
  echo "== $t: ${seconds}s, corpus $corpus ($(find "$corpus" -type f | wc -l) inputs)"
  status=0
  cargo fuzz run --target-dir "$target_dir" "${build_args[@]}" "$t" "${dirs[@]}" -- \
    "${args[@]}" "${extra_args[@]}" >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  if [ -z "$execs" ]; then
    # A crash ends the run before the final stats: take the last status line.
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  fi
  if grep -q 'failed to build fuzz script' "$log"; then
    echo "$t: the build failed, see $log" >&2
    exit 2
  fi
  size=$(find "$corpus" -type f | wc -l)
  mapfile -t found_files < <(find "$artifacts" -maxdepth 1 -type f ! -name '*.log' ! -name '.started' -newer "$marker")
  crashes=${#found_files[@]}
  line="$t: ${execs:-?} executions (${rate:-?}/s), corpus $size"
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    found=1
    line="$line, FOUND SOMETHING (exit $status, ${crashes} artifact(s)): see $log"
    grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY)' "$log" | head -5 || true
    printf '   %s\n' "${found_files[@]}"
  else
    line="$line, no crash"
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$found"
