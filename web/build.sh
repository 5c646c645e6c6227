#!/bin/sh
# Builds the browser page into a static folder: index.html, app.js, the wasm module with
# wasm-bindgen's JavaScript glue, and the four MNIST *-ubyte.gz files beside them.
#
#   web/build.sh [OUT]          # OUT defaults to web/dist
#
# Then serve OUT with `descent web --dir OUT` (it prints the address) or any static server.
#
# Needs: Debian's rustc-web/cargo-web/rust-web-src (Rust with a buildable std for wasm32, as
# /usr/bin/cargo), lld, and `cargo install wasm-bindgen-cli --version` the wasm-bindgen version
# in Cargo.lock. MNIST comes from $MNIST_DIR, else the directory $MNIST_MIRROR names (file://
# or a path), else data/mnist (where `descent data` puts it).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/web/dist}

want=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;}' "$root/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
    echo "error: wasm-bindgen-cli $want is needed (found: ${have:-none}); run: cargo install wasm-bindgen-cli --version $want" >&2
    exit 1
fi

data=${MNIST_DIR:-}
if [ -z "$data" ] && [ -n "${MNIST_MIRROR:-}" ]; then
    data=${MNIST_MIRROR#file://}
fi
data=${data:-$root/data/mnist}
files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
for f in $files; do
    if [ ! -f "$data/$f" ]; then
        echo "error: $data/$f is missing; set MNIST_DIR to a directory holding the four MNIST *-ubyte.gz files (or run \`descent data\`)" >&2
        exit 1
    fi
done

# std is rebuilt for wasm32 with panic=abort (the `wasm` profile aborts to match).
cd "$root"
PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 cargo build -p descent-web --lib \
    --target wasm32-unknown-unknown --profile wasm -Zbuild-std=std,panic_abort
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
    "$root/target/wasm32-unknown-unknown/wasm/descent_web.wasm"
cp -f "$root/web/www/index.html" "$root/web/www/app.js" "$out/"
for f in $files; do
    cp -f "$data/$f" "$out/$f"
done
echo "built $out: serve it with \`descent web --dir $out\` (or any static server)"
