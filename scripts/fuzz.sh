#!/usr/bin/env bash
# make fuzz FUZZ_SECONDS=N [FUZZ_TARGETS="http png ..."]: builds hydra-fuzz with libFuzzer and
# AddressSanitizer, runs each target for N seconds from its committed seeds, and prints per target
# the executions, coverage and crashes. A crash fails the run; its input is left in
# out/fuzz/crashes/<target>/ (fix it, then keep it in Fuzz/regressions/<target>/).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-http chunked infer png jpeg safetensors checkpoint formdata}
SWIFT=${SWIFT:-swift}
BIN=.build/fuzz/debug/hydra-fuzz

mkdir -p out/fuzz
echo "== building hydra-fuzz with libFuzzer + AddressSanitizer (log: out/fuzz/build.log)"
if ! $SWIFT build --product hydra-fuzz --scratch-path .build/fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xcc -fsanitize=fuzzer-no-link,address >out/fuzz/build.log 2>&1; then
    grep -v "Cannot export local symbol" out/fuzz/build.log | tail -30
    exit 1
fi

seeds() {
    case $1 in
        png|jpeg) echo "Tests/HydraImageTests/Fixtures" ;;
        *) echo "Fuzz/corpus/$1" ;;
    esac
}

failed=0
summary=()
for t in $TARGETS; do
    work=out/fuzz/corpus/$t crashes=out/fuzz/crashes/$t
    mkdir -p "$work" "$crashes"
    dict=()
    [ -f "Fuzz/$t.dict" ] && dict=(-dict="Fuzz/$t.dict")
    echo "== $t: ${SECONDS_PER_TARGET} s"
    log=out/fuzz/$t.log
    # detect_leaks=0: LeakSanitizer flags Swift runtime metadata caches that live for the process.
    # SWIFT_BACKTRACE off: on a Swift trap its backtracer reads the stack and trips ASan itself.
    HYDRA_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no "$BIN" "$work" "$(seeds "$t")" Fuzz/regressions/$t \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "${dict[@]}" >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    corp=$(ls "$work" | wc -l)
    found=$(ls "$crashes" | wc -l)
    line="$t: ${runs:-?} executions, ${cov:-cov ?}, corpus $corp, crash inputs $found, exit $rc"
    echo "$line"
    summary+=("$line")
    if [ $rc -ne 0 ] || [ "$found" -ne 0 ]; then
        failed=1
        grep -m1 -A12 'ERROR: \|==ERROR\|Fatal error\|deadly signal' "$log" || tail -20 "$log"
    fi
done
echo "== fuzz summary (${SECONDS_PER_TARGET} s per target)"
printf '%s\n' "${summary[@]}"
exit $failed
