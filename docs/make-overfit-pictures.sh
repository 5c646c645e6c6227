#!/usr/bin/env bash
# Regenerates the pictures of the overfitting section of docs/guide.md in docs/guide/ (make-guide.sh runs it): `descent overfit` with its
# defaults (under a minute on 2 cores), then a small model trained and pruned at five sparsities
# (another minute or two). Everything on the CPU, seeded. Run from anywhere:
#   MNIST_MIRROR=file:///path/to/mnist docs/make-overfit-pictures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/descent
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p docs/guide

"$bin" overfit --quiet --device cpu --plot docs/guide/overfit.png
"$bin" train --quiet --device cpu --epochs 5 --seed 1 --save "$work/model.safetensors" >/dev/null
"$bin" prune --quiet --device cpu --checkpoint "$work/model.safetensors" \
    --sweep 0.5,0.8,0.9,0.95,0.98 --finetune-epochs 1 --plot docs/guide/prune-sweep.png
"$bin" prune --quiet --device cpu --checkpoint "$work/model.safetensors" --method units \
    --sweep 0.5,0.75,0.875,0.9375 --finetune-epochs 1 --plot docs/guide/prune-units.png
ls -l docs/guide/overfit.png docs/guide/prune-sweep.png docs/guide/prune-units.png
