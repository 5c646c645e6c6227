#!/bin/sh
# The browser tests, kept out of `cargo test` (they need Chromium and npm):
#
#   web/tests/run.sh            # writes web/tests/out/ (page.png, web.safetensors)
#
# Builds the page (web/build.sh), installs playwright-core (npm), serves the page with `descent
# web` and drives it in headless Chromium ($CHROMIUM, else /usr/bin/chromium), then checks that `descent eval` reads the
# downloaded checkpoint and finds the accuracy the page showed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$here/out"
rm -rf "$out"
mkdir -p "$out"
"$root/web/build.sh" "$out/dist"
(cd "$here" && npm install --no-audit --no-fund --silent)
(cd "$root" && cargo build --release --quiet)
data=${MNIST_DIR:-${MNIST_MIRROR:-$root/data/mnist}}
data=${data#file://}
DESCENT="$root/target/release/descent" MNIST_MIRROR="$data" node "$here/e2e.mjs" "$out/dist" "$out"
json=$("$root/target/release/descent" eval --json --device cpu --checkpoint "$out/web.safetensors" \
    --data-dir "$out/mnist" --mirror "$data")
acc=$(printf '%s' "$json" | sed -n 's/.*"test_accuracy":\([0-9.]*\).*/\1/p')
page=$(tr -d '%\n' < "$out/accuracy.txt")
cli=$(awk -v a="$acc" 'BEGIN { printf "%.2f", 100 * a }')
if [ "$cli" = "$page" ]; then
    echo "ok   descent eval reads the page's checkpoint: $cli% (the page showed $page%)"
else
    echo "FAIL descent eval finds $cli%, the page showed $page%"
    exit 1
fi
