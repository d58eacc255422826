#!/bin/sh
# Runs one fuzz target for a bounded time, on stable Rust:
#   fuzz/run.sh <parse_documents|parse_spec_value|decode_item> [seconds] [libFuzzer flags...]
# New inputs go to fuzz/corpus/<target> (not committed); fuzz/seeds/<target> is read too.
# A crash or a hang (10 s per input) stops the run and is saved in fuzz/artifacts/<target>/.
set -eu
cd "$(dirname "$0")/.."
usage="usage: fuzz/run.sh parse_documents|parse_spec_value|decode_item [seconds] [flags...]"
target=${1:?$usage}
seconds=${2:-60}
shift
if [ $# -gt 0 ]; then shift; fi
mkdir -p "fuzz/corpus/$target"
# --sanitizer none: AddressSanitizer needs nightly's -Zsanitizer, and the code under test is
# safe Rust; the coverage instrumentation cargo fuzz adds works on stable.
exec cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
