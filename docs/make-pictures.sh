#!/usr/bin/env bash
# Regenerates the README's pictures in docs/: trains two small models on MNIST on the CPU (about
# a minute on 2 cores) and draws every picture from them. Run from anywhere:
#   MNIST_MIRROR=file:///path/to/mnist docs/make-pictures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/descent
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
common=(--quiet --device cpu --epochs 8 --seed 1)

"$bin" train "${common[@]}" --metrics "$work/batch64.jsonl" --save "$work/model.safetensors" >/dev/null
"$bin" train "${common[@]}" --batch-size 256 --lr 0.1 --metrics "$work/batch256.jsonl" >/dev/null

"$bin" plot "$work/batch64.jsonl" "$work/batch256.jsonl" --labels "batch 64 lr 0.03,batch 256 lr 0.1" \
    --title "784-128-10 (relu, xent) · mnist · cpu · SGD momentum 0.9: batch 64 vs 256" \
    -o docs/curves.png
"$bin" eval --quiet --device cpu --checkpoint "$work/model.safetensors" \
    --confusion-png docs/confusion.png --errors-png docs/errors.png --errors 24
"$bin" weights --checkpoint "$work/model.safetensors" --units 48 --png docs/weights.png
ls -l docs/*.png
