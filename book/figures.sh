#!/usr/bin/env bash
# Regenerates the book's figures from the examples' default runs and copies them into
# book/src/figures/. Run from anywhere; it takes a few seconds for the chapters written so far.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/book
cargo run --release --example attention_pooling -- --out "$out/attention_pooling" --quiet
cargo run --release --example custom_layer -- --out "$out/custom_layer" --quiet
fig=book/src/figures
mkdir -p "$fig"
cp "$out/attention_pooling/fits.svg" "$fig/attention_pooling_fits.svg"
cp "$out/attention_pooling/weights_nonparametric.svg" "$fig/attention_pooling_weights_nonparametric.svg"
cp "$out/attention_pooling/weights_parametric.svg" "$fig/attention_pooling_weights_parametric.svg"
cp "$out/custom_layer/learning_curves.svg" "$fig/custom_layer_learning_curves.svg"
cp "$out/custom_layer/learned_beta.svg" "$fig/custom_layer_learned_beta.svg"
