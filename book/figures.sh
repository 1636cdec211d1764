#!/usr/bin/env bash
# Regenerates the book's figures and results tables from the examples' default runs, and copies
# them into book/src/figures/ and book/src/results/.
#
# An example whose output folder (its default `runs/<example>`) already holds a finished run is
# not run again; FORCE=1 reruns everything. The full set takes about an hour on 2 cores, most
# of it `contextpool_lm --compare`; the ContextPool study adds about 110 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

# run DIR MARKER EXAMPLE [ARGS...]: run the example unless DIR/MARKER exists.
run() {
    local dir=$1 marker=$2 example=$3
    shift 3
    if [ -n "${FORCE:-}" ] || [ ! -e "$dir/$marker" ]; then
        cargo run --release --example "$example" -- "$@"
    fi
}
run runs/attention_pooling results.json attention_pooling
run runs/custom_layer results.json custom_layer
run runs/contextpool_lm sample.txt contextpool_lm
run runs/contextpool_lm_compare results.md contextpool_lm --compare
run runs/image_classify results.md image_classify
run runs/translate results.md translate
# The ContextPool study with its longer check (about 110 minutes on 2 cores).
if [ -n "${FORCE:-}" ] || [ ! -e runs/contextpool_study/long/results.md ]; then
    LONG=1 examples/contextpool_study.sh
fi

fig=book/src/figures
res=book/src/results
mkdir -p "$fig" "$res"
copy() { cp "runs/$1" "$fig/$2"; }
copy attention_pooling/fits.svg attention_pooling_fits.svg
copy attention_pooling/weights_nonparametric.svg attention_pooling_weights_nonparametric.svg
copy attention_pooling/weights_parametric.svg attention_pooling_weights_parametric.svg
copy custom_layer/learning_curves.svg custom_layer_learning_curves.svg
copy custom_layer/learned_beta.svg custom_layer_learned_beta.svg
copy contextpool_lm/pool_sizes_layer1.svg lm_pool_sizes_layer1.svg
copy contextpool_lm/pool_sizes_layer2.svg lm_pool_sizes_layer2.svg
copy contextpool_lm/attention_layer1_head1.svg lm_attention_layer1_head1.svg
copy contextpool_lm_compare/compare_valid_bpc.svg lm_compare_valid_bpc.svg
copy image_classify/cnn-contextpool/pool_sizes_block1.svg image_pool_sizes.svg
copy image_classify/cnn-contextpool/test_image.svg image_test_image.svg
copy image_classify/vit-contextpool/pool_sizes_layer1.svg image_vit_pool_sizes.svg
copy translate/gru/alignment.svg translate_alignment.svg
cp runs/contextpool_lm_compare/results.md "$res/contextpool_lm_compare.md"
cp runs/image_classify/results.md "$res/image_classify.md"
cp runs/translate/results.md "$res/translate.md"
for part in placements_1 placements_2 options alternatives; do
    cp "runs/contextpool_study/lm/$part.md" "$res/contextpool_study_$part.md"
done
cp runs/contextpool_study/images/results.md "$res/contextpool_study_images.md"
cp runs/contextpool_study/long/results.md "$res/contextpool_study_long.md"
copy contextpool_study/lm/placements_1_valid_bpc.svg contextpool_study_placements_sotu.svg
copy contextpool_study/lm/placements_2_valid_bpc.svg contextpool_study_placements_shakespeare.svg
echo "figures in $fig, tables in $res"
