#!/usr/bin/env bash
# Regenerates the pictures (and the explain transcript) of docs/guide.md under docs/guide/:
# four landscapes (instant), the three modes on 20000 MNIST samples (about 35 s on 2 cores) and
# a 12-cell learning-rate × batch-size sweep (about 15 s). Run from anywhere:
#   MNIST_MIRROR=file:///path/to/mnist docs/make-guide.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/descent
out=docs/guide
mkdir -p "$out"

"$bin" explain > "$out/explain.txt"

"$bin" landscape --function elongated --optimizers sgd,momentum --plot "$out/elongated.png"
"$bin" landscape --function rosenbrock --start 0,0 --lr 0.002 --steps 2000 \
    --optimizers sgd,momentum,adam --plot "$out/rosenbrock.png"
"$bin" landscape --function saddle --plot "$out/saddle.png"
"$bin" landscape --function rastrigin --optimizers sgd,momentum,adam \
    --lr sgd=0.002,momentum=0.01,adam=0.3 --plot "$out/rastrigin.png"
"$bin" landscape --function elongated --optimizers sgd --lr 0.098 --steps 60 --plot "$out/lr-too-high.png"
"$bin" landscape --function elongated --optimizers sgd --lr 0.11 --steps 60 || true

"$bin" modes --quiet --device cpu --plot "$out/modes.png"

"$bin" sweep --quiet --device cpu --lr 0.003,0.03,0.3,3 --batch-size 16,64,256 \
    --limit 10000 --epochs 2 --plot "$out/sweep.png"
ls -l "$out"

# The overfitting section's pictures.
docs/make-overfit-pictures.sh
