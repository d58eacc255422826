#!/usr/bin/env bash
# Runs every benchmark (see BENCHMARKS.md) and collects their JSON reports into
# target/bench/report.json. Each benchmark also prints a short table.
#
#   ./scripts/bench.sh                 # all of them (a few minutes after the release build)
#   ./scripts/bench.sh decide scale    # only these
#
# The reaction benchmark needs moto (installed into .venv-moto by ./scripts/test.sh).
# Extra arguments for one benchmark: SCALE_ARGS, DEPLOYMENT_ARGS, WAITS_ARGS, REACTION_ARGS, DECIDE_ARGS,
# TASK_SETS_ARGS,
# e.g. SCALE_ARGS="--releases 100,1000" ./scripts/bench.sh scale
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
target_dir="${CARGO_TARGET_DIR:-target}"
out="$target_dir/bench"
mkdir -p "$out"

benchmarks=("$@")
if [ ${#benchmarks[@]} -eq 0 ]; then
  benchmarks=(decide scale deployment waits reaction task_sets fleet_budget)
fi

say "building (release): the binary, the examples and the benchmark"
cargo build --release --locked --bin switchyard --examples
cargo bench --locked --no-run --bench decide

for name in "${benchmarks[@]}"; do
  say "benchmark: $name"
  case "$name" in
    decide) cargo bench --locked --bench decide -- ${DECIDE_ARGS:-} ;;
    scale) "$target_dir/release/examples/scale" ${SCALE_ARGS:-} ;;
    deployment) "$target_dir/release/examples/deployment" ${DEPLOYMENT_ARGS:-} ;;
    waits) "$target_dir/release/examples/waits" ${WAITS_ARGS:-} ;;
    task_sets) "$target_dir/release/examples/task_sets" ${TASK_SETS_ARGS:-} ;;
    fleet_budget) "$target_dir/release/examples/fleet_budget" ${FLEET_BUDGET_ARGS:-} ;;
    reaction)
      if [ ! -x .venv-moto/bin/moto_server ] && [ -z "${SWITCHYARD_MOTO_SERVER:-}" ]; then
        echo "error: moto is not installed; run ./scripts/test.sh once (it creates .venv-moto)" >&2
        exit 1
      fi
      # Each release alone, then all kept in flight (the daemon polling them all).
      "$target_dir/release/examples/reaction" ${REACTION_ARGS:-}
      "$target_dir/release/examples/reaction" --keep-in-flight ${REACTION_ARGS:-}
      ;;
    *) echo "error: unknown benchmark $name (decide, scale, deployment, waits, reaction, task_sets, fleet_budget)" >&2; exit 2 ;;
  esac
done

# One report: {"decide": {...}, "scale": {...}, ...} from whichever reports exist.
report="$out/report.json"
{
  printf '{'
  sep=''
  for name in decide scale deployment waits reaction reaction-loaded task_sets fleet_budget; do
    if [ -f "$out/$name.json" ]; then
      printf '%s\n"%s": ' "$sep" "${name//-/_}"
      cat "$out/$name.json"
      sep=','
    fi
  done
  printf '}\n'
} > "$report"
say "report: $report"
