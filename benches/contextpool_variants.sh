#!/usr/bin/env bash
# Time per training step of every language-model variant of the ContextPool study (README,
# "Does ContextPool help?"), on an otherwise idle machine: 30 steps of each variant, the variants
# taken in turn REPS times (default 3), the median of the repetitions in milliseconds. The
# study's own ms/step column includes its periodic evaluations and whatever else the machine
# did while it ran; this one is the step alone (one evaluation of one window at step 30).
#
#     benches/contextpool_variants.sh            # prints a Markdown table
#
# Settings as the study's: batch 32 × 128 characters, d = 128, 4 heads, the default flags.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
steps=30
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
cargo build --release --example contextpool_lm
bin=target/release/examples/contextpool_lm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# label|flags
variants=(
    "baseline (4 layers)|--model baseline"
    "baseline (2 layers)|--model baseline --layers 2"
    "contextpool input|--model contextpool --pool-placement input"
    "contextpool kv|--model contextpool --pool-placement kv"
    "contextpool after-block|--model contextpool --pool-placement after-block"
    "contextpool per-head|--model contextpool --pool-placement per-head"
    "contextpool kv raw|--model contextpool --pool-placement kv --pool-features raw"
    "contextpool kv unnormalized|--model contextpool --pool-placement kv --pool-unnormalized"
    "adaptive-span (4 layers)|--model adaptive-span"
    "local (4 layers)|--model local"
    "strided (4 layers)|--model strided"
)

declare -A ms
for ((r = 0; r < reps; r++)); do
    for i in "${!variants[@]}"; do
        flags=${variants[$i]#*|}
        out="$tmp/v$i-r$r"
        # shellcheck disable=SC2086 # the flags are words
        "$bin" $flags --steps "$steps" --eval-every "$steps" --eval-chars 129 --test-chars 129 \
            --sample-chars 0 --quiet --out "$out" >/dev/null
        # The seconds column of the last metrics row: training time up to step 30.
        s=$(tail -n 1 "$out/metrics.csv" | awk -F, '{print $NF}')
        ms[$i]="${ms[$i]:-} $(awk -v s="$s" -v n="$steps" 'BEGIN {printf "%.1f", 1000 * s / n}')"
    done
done

echo "| model | ms/step (median of $reps × $steps steps) | all repetitions |"
echo "| --- | ---: | --- |"
for i in "${!variants[@]}"; do
    label=${variants[$i]%%|*}
    median=$(echo "${ms[$i]}" | tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    echo "| $label | $median | ${ms[$i]# } |"
done
