#!/usr/bin/env bash
# The ContextPool study (README, "Does ContextPool help?"; book chapter 12): every variant
# trained SEEDS times, tables with means and spreads, learning curves, and the wall time.
#
#     examples/contextpool_study.sh                 # the default grid: under 90 minutes on 2 cores
#     SEEDS=5 STEPS=1500 examples/contextpool_study.sh   # a larger grid (about 6 hours)
#     LONG=1 examples/contextpool_study.sh          # then the longer check below (+23 minutes)
#
# Language model (`contextpool_lm --study`), on the State of the Union addresses and on
# Shakespeare: the plain model at 4 and 2 layers and the 2-layer ContextPool model in each
# placement (input, keys and values only, after the block, per head); ContextPool's open
# choices (initial size, size range, normalisation, raw features); adaptive span, local and
# strided attention. Images (`image_classify`, Fashion-MNIST): the CNN with max pooling and
# with ContextPool, the ViT without and with ContextPool in each placement.
# With LONG=1, last: the 4-layer plain model against the best 2-layer ContextPool variant (per
# head, the example's default) on the example's full budget of 1,500 steps, SEEDS times
# (`contextpool_lm --compare --models baseline,contextpool`), in long/results.md.
# Everything lands in $OUT (default runs/contextpool_study): lm/study.md and images.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${SEEDS:-3}
steps=${STEPS:-500}
epochs=${EPOCHS:-3}
out=${OUT:-runs/contextpool_study}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
cargo build --release --example contextpool_lm --example image_classify
start=$(date +%s)
lm=(target/release/examples/contextpool_lm --study --seeds "$seeds" --steps "$steps"
    --eval-every 100 --eval-chars 16384 --test-chars 65536 --sample-chars 0 --quiet
    --out "$out/lm")
echo "${lm[*]}"
"${lm[@]}"
lm_done=$(date +%s)
images=(target/release/examples/image_classify --seeds "$seeds" --epochs "$epochs" --quiet
    --models cnn-max,cnn-contextpool,vit,vit-contextpool
    --vit-pool-placement input,kv,after-block,per-head --out "$out/images")
echo "${images[*]}"
"${images[@]}" >/dev/null
end=$(date +%s)
{
    echo "## Fashion-MNIST, $epochs epochs"
    echo
    cat "$out/images/results.md"
    echo
    echo "Wall time: language model $(( (lm_done - start) / 60 )) minutes, images" \
        "$(( (end - lm_done) / 60 )) minutes, in all $(( (end - start) / 60 )) minutes" \
        "(RAYON_NUM_THREADS=$RAYON_NUM_THREADS)."
} >"$out/images.md"
cat "$out/lm/study.md" "$out/images.md"
if [ -n "${LONG:-}" ]; then
    long=(target/release/examples/contextpool_lm --compare --models baseline,contextpool
        --seeds "$seeds" --sample-chars 0 --quiet --out "$out/long")
    echo "${long[*]}"
    long_start=$(date +%s)
    "${long[@]}"
    echo "The longer check took $(( ($(date +%s) - long_start) / 60 )) minutes."
    cat "$out/long/results.md"
fi
