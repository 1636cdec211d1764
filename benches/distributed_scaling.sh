#!/usr/bin/env bash
# Data parallelism on one 2-core machine: the contextpool_lm training step on 1 process with 2
# threads against 2 MPI processes with 1 thread each (the same global batch of 32), in
# alternating runs, and the share of the 2-rank step spent in the gradient all-reduce.
#
#     benches/distributed_scaling.sh [MODEL ...]      # default: contextpool baseline
#
# Needs Open MPI (`apt-get install -y libopenmpi-dev openmpi-bin clang libclang-dev`). Prints
# one Markdown row per model; the README's "Many processes" section quotes them. The time per
# step is the second half of an 80-step run (the first half warms caches and allocators).
# Then the PyTorch peer (benches/peers/distributed_peer.py: the same models under
# DistributedDataParallel on Gloo) in the same run, with $PYTHON (default python3) if it has
# torch.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --features mpi --example contextpool_lm >&2
bin=target/release/examples/contextpool_lm
out=${OUT:-target/distributed_scaling}
runs=${RUNS:-3}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(contextpool baseline)
args="--steps 80 --eval-every 40 --eval-chars 129 --test-chars 129 --sample-chars 0 --quiet"
echo "| model | parameters | 1 rank × 2 threads (ms/step) | 2 ranks × 1 thread (ms/step) | ratio 2 ranks / 1 rank | all-reduce share of the 2-rank step |"
echo "| --- | --- | --- | --- | --- | --- |"
for model in "${models[@]}"; do
    for i in $(seq "$runs"); do
        RAYON_NUM_THREADS=2 "$bin" --model "$model" $args --out "$out/one-$model-$i" >/dev/null
        RAYON_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 -x RAYON_NUM_THREADS \
            "$bin" --model "$model" $args --distributed --out "$out/two-$model-$i" >/dev/null
    done
    python3 - "$out" "$model" "$runs" <<'PY'
import csv, json, statistics, sys
out, model, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ms_per_step(d):
    rows = list(csv.DictReader(open(f"{d}/metrics.csv")))
    return (float(rows[1]["seconds"]) - float(rows[0]["seconds"])) / 40 * 1000
def share(d):
    j = json.load(open(f"{d}/metrics.json"))
    return j["allreduce_seconds"] / j["train_seconds"]
one = [ms_per_step(f"{out}/one-{model}-{i}") for i in range(1, runs + 1)]
two = [ms_per_step(f"{out}/two-{model}-{i}") for i in range(1, runs + 1)]
sh = [share(f"{out}/two-{model}-{i}") for i in range(1, runs + 1)]
params = json.load(open(f"{out}/one-{model}-1/metrics.json"))["params"]
m1, m2 = statistics.median(one), statistics.median(two)
print(f"| {model} | {params:,} | {m1:.1f} | {m2:.1f} | {m2 / m1:.2f} | {100 * statistics.median(sh):.1f}% |")
PY
done
python=${PYTHON:-python3}
if "$python" -c "import torch" 2>/dev/null; then
    echo
    models_csv=$(IFS=,; echo "${models[*]}")
    "$python" benches/peers/distributed_peer.py --models "$models_csv" --runs "$runs"
else
    echo
    echo "(the PyTorch peer was not run: $python cannot import torch; set PYTHON)"
fi
