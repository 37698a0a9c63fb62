#!/usr/bin/env bash
# The whole suite: the C tests, the specs run by ./relua, and the specs again with the
# binary built under AddressSanitizer + UndefinedBehaviorSanitizer (leaks fail).
# Ends with one line "N passed, N failed"; exits non-zero when anything failed.
set -u
cd "$(dirname "$0")/.." || exit 2
passed=0
failed=0
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export RELUA_WARNINGS_FATAL=1

echo "== C tests"
for t in build/ctest/*; do
  [ -x "$t" ] || continue
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | sed -n 's/^C: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' | tail -n1)
  f=$(printf '%s\n' "$out" | sed -n 's/^C: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' | tail -n1)
  if [ -z "$p" ]; then p=0; f=1; echo "$t: no result line (rc=$rc)"; fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$t: exit status $rc"; fi
  passed=$((passed + p)); failed=$((failed + f))
done

# The libFuzzer harnesses, a few seconds each from the seed corpus (`make fuzz` runs them
# for minutes). A crash, a sanitizer report or a failed property fails the suite; the input
# is kept as build/fuzz/crash-NAME-* to reproduce it: build/fuzz/NAME FILE.
fuzz_seconds=${RELUA_FUZZ_SECONDS:-5}
echo "== fuzz (${fuzz_seconds} s each)"
for f in build/fuzz/*; do
  if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
  n=$(basename "$f")
  work=$(mktemp -d)
  if "$f" -max_total_time="$fuzz_seconds" -timeout=10 -artifact_prefix="build/fuzz/crash-$n-" \
       "$work" "tests/fuzz/corpus/$n" > "$work.log" 2>&1; then
    echo "fuzz $n: $(grep -o 'Done [0-9]* runs' "$work.log" | tail -n1), no crash"
    passed=$((passed + 1))
  else
    tail -n 40 "$work.log"
    echo "fuzz $n: FAILED (the input is in build/fuzz/crash-$n-*)"
    failed=$((failed + 1))
  fi
  rm -rf "$work" "$work.log"
done

run_specs() {  # label binary [busted args]
  local label=$1 bin=$2
  shift 2
  run_specs_with "$label" "$bin" "$bin" "$@"
}

run_specs_with() {  # label runner binary-under-test [busted args]
  local label=$1 runner=$2 bin=$3
  shift 3
  echo "== specs ($label)"
  rm -f "$counts"
  RELUA_BIN=$bin RELUA_TEST_COUNTS=$counts "$runner" tests/run.lua "$@"
  local rc=$?
  if [ -s "$counts" ]; then
    read -r p f e _ < "$counts"
    passed=$((passed + p)); failed=$((failed + f + e))
    if [ "$rc" -ne 0 ] && [ $((f + e)) -eq 0 ]; then
      echo "specs ($label): the runner exited $rc"; failed=$((failed + 1))
    fi
  else
    echo "specs ($label): the runner ended without counts (rc=$rc)"
    failed=$((failed + 1))
  fi
}

run_specs relua ./relua

# The command-line scenarios once more with relua under valgrind memcheck: an invalid
# access, uninitialised memory or a leak of relua's is exit 99 (tests/valgrind/relua; the
# suppressions there name libgit2's known leak, nothing of relua's).
vglogs=$(mktemp -d)
RELUA_VALGRIND_LOGS=$vglogs RELUA_VALGRIND_BIN=$PWD/build/bin/relua \
  run_specs_with valgrind ./relua tests/valgrind/relua tests/memcheck_spec.lua
for log in "$vglogs"/*.log; do
  grep -q '^==[0-9]*== [A-Z0-9]' "$log" 2>/dev/null && { echo "valgrind: $log"; cat "$log"; }
done
rm -rf "$vglogs"
# Resident-memory measurements mean nothing under ASan's allocator, and the crash sweep
# (strace over a real release) is about the ledger, not memory: those run above only.
run_specs asan build/asan/relua --exclude-tags=rss,sweep
# The release specs once more, on the PostgreSQL store (a database per sandbox on the
# suite's own server); those tagged #folder look at the folder store's files.
RELUA_TEST_STORE=postgres run_specs "relua, postgres store" ./relua --exclude-tags=folder \
  tests/release_cli_spec.lua tests/control_cli_spec.lua tests/recipe_delivery_lane_spec.lua \
  tests/release_crash_spec.lua tests/release_api_spec.lua tests/release_recipe_spec.lua

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
