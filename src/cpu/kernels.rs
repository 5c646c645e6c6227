//! The CPU twins of the WGSL kernels: same names, same argument order (outputs, then inputs, then
//! dimensions), same maths. Row-major everywhere. Matrix products go through the `gemm` crate.

use super::simd::{dispatch, madd, simd_body};
use crate::data::PIXELS;
use crate::model::Activation;

/// Products with at most this many outputs (the 10 classes) run as the plain loops below:
/// `gemm` packs its operands into buffers it allocates on every call, which at these sizes
/// costs more than the arithmetic, and a training step must not allocate.
const NARROW: usize = 16;

/// C[m, n] (+)= op(A)[m, k] · op(B)[k, n]. `a_t`: A is stored [k, m]; `b_t`: B is stored [n, k].
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    c: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(c.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = if a_t {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if b_t {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the assert above bounds every index gemm forms from these strides and sizes, and
    // `c` is a unique borrow that overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            // The CPU backend splits the batch across threads itself: at this model's sizes
            // that beats gemm's own threading (measured: 158k vs 102k samples/s at batch 64).
            gemm::Parallelism::None,
        );
    }
}

/// `out[B, N]` = `inp[B, K]` · `weight[N, K]`ᵀ + `bias[N]`
pub fn matmul_forward(
    out: &mut [f32],
    inp: &[f32],
    weight: &[f32],
    bias: &[f32],
    b: usize,
    k: usize,
    n: usize,
) {
    for row in out[..b * n].chunks_exact_mut(n) {
        row.copy_from_slice(&bias[..n]);
    }
    if n <= NARROW && k > 0 {
        return dispatch!(narrow_forward(out, inp, weight, b, k, n));
    }
    sgemm(out, true, inp, false, weight, true, b, n, k);
}

/// dinp[B, K] = dout[B, N] · weight[N, K]
pub fn matmul_backward_input(
    dinp: &mut [f32],
    dout: &[f32],
    weight: &[f32],
    b: usize,
    k: usize,
    n: usize,
) {
    if n <= NARROW && n > 0 {
        return dispatch!(narrow_backward_input(dinp, dout, weight, b, k, n));
    }
    sgemm(dinp, false, dout, false, weight, false, b, k, n);
}

/// dweight[N, K] = dout[B, N]ᵀ · inp[B, K], or += with `accumulate` (a batch in several chunks).
pub fn matmul_backward_weight(
    dweight: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    b: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    if n <= NARROW && k > 0 {
        return dispatch!(narrow_backward_weight(
            dweight, dout, inp, b, k, n, accumulate
        ));
    }
    sgemm(dweight, accumulate, dout, true, inp, false, n, k, b);
}

/// Lanes of the partial sums in a dot product: one AVX2 register.
const LANES: usize = 8;

simd_body! {
/// out[B, N] += inp[B, K] · weight[N, K]ᵀ, N narrow: a dot product per output.
fn narrow_forward(out: &mut [f32], inp: &[f32], weight: &[f32], b: usize, k: usize, n: usize) {
    for (o, x) in out[..b * n].chunks_exact_mut(n).zip(inp.chunks_exact(k)) {
        for (oj, w) in o.iter_mut().zip(weight[..n * k].chunks_exact(k)) {
            // Eight running sums, so the loop vectorizes without reassociating one sum.
            let mut acc = [0.0f32; LANES];
            let (xc, wc) = (x.chunks_exact(LANES), w.chunks_exact(LANES));
            let tail: f32 = xc.remainder().iter().zip(wc.remainder()).map(|(a, b)| a * b).sum();
            for (xs, ws) in xc.zip(wc) {
                for ((a, &xv), &wv) in acc.iter_mut().zip(xs).zip(ws) {
                    *a = madd::<FMA>(xv, wv, *a);
                }
            }
            *oj += acc.iter().sum::<f32>() + tail;
        }
    }
}
}

simd_body! {
/// dinp[B, K] = dout[B, N] · weight[N, K], N narrow: each input row sums N weight rows.
fn narrow_backward_input(
    dinp: &mut [f32],
    dout: &[f32],
    weight: &[f32],
    b: usize,
    k: usize,
    n: usize,
) {
    for (d, g) in dinp[..b * k].chunks_exact_mut(k).zip(dout.chunks_exact(n)) {
        d.fill(0.0);
        for (&gj, w) in g.iter().zip(weight[..n * k].chunks_exact(k)) {
            for (dv, &wv) in d.iter_mut().zip(w) {
                *dv = madd::<FMA>(gj, wv, *dv);
            }
        }
    }
}
}

simd_body! {
/// dweight[N, K] (+)= dout[B, N]ᵀ · inp[B, K], N narrow: each weight row sums B input rows.
fn narrow_backward_weight(
    dweight: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    b: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    if !accumulate {
        dweight[..n * k].fill(0.0);
    }
    for (g, x) in dout[..b * n].chunks_exact(n).zip(inp.chunks_exact(k)) {
        for (&gj, d) in g.iter().zip(dweight[..n * k].chunks_exact_mut(k)) {
            for (dv, &xv) in d.iter_mut().zip(x) {
                *dv = madd::<FMA>(gj, xv, *dv);
            }
        }
    }
}
}

/// `dbias[N]` = Σ_b `dout[b, N]`, or += with `accumulate`.
pub fn bias_backward(dbias: &mut [f32], dout: &[f32], b: usize, n: usize, accumulate: bool) {
    let dbias = &mut dbias[..n];
    if !accumulate {
        dbias.fill(0.0);
    }
    for row in dout[..b * n].chunks_exact(n) {
        for (acc, v) in dbias.iter_mut().zip(row) {
            *acc += v;
        }
    }
}

/// `act[n]` = max(act, 0), in place.
pub fn relu_forward(act: &mut [f32]) {
    act.iter_mut().for_each(|x| *x = x.max(0.0));
}

/// `dact[n]` *= (act > 0); `act` is the activation's output.
pub fn relu_backward(dact: &mut [f32], act: &[f32]) {
    // A select, not a branch: the sign of a hidden unit is a coin toss the predictor loses
    // (a conditional store also keeps LLVM from vectorizing the loop).
    for (d, &a) in dact.iter_mut().zip(act) {
        *d = if a <= 0.0 { 0.0 } else { *d };
    }
}

/// `act[n]` = 1 / (1 + e^-act), in place.
pub fn sigmoid_forward(act: &mut [f32]) {
    act.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp()));
}

/// `dact[n]` *= act·(1 − act)
pub fn sigmoid_backward(dact: &mut [f32], act: &[f32]) {
    for (d, &a) in dact.iter_mut().zip(act) {
        *d *= a * (1.0 - a);
    }
}

/// `act[n]` = tanh(act), in place.
pub fn tanh_forward(act: &mut [f32]) {
    act.iter_mut().for_each(|x| *x = x.tanh());
}

/// `dact[n]` *= 1 − act²
pub fn tanh_backward(dact: &mut [f32], act: &[f32]) {
    for (d, &a) in dact.iter_mut().zip(act) {
        *d *= 1.0 - a * a;
    }
}

pub fn activation_forward(kind: Activation, act: &mut [f32]) {
    match kind {
        Activation::Relu => relu_forward(act),
        Activation::Sigmoid => sigmoid_forward(act),
        Activation::Tanh => tanh_forward(act),
    }
}

pub fn activation_backward(kind: Activation, dact: &mut [f32], act: &[f32]) {
    match kind {
        Activation::Relu => relu_backward(dact, act),
        Activation::Sigmoid => sigmoid_backward(dact, act),
        Activation::Tanh => tanh_backward(dact, act),
    }
}

/// `losses[B]` = −log softmax(logits)`[label]`; `probs[B, C]` = softmax(logits).
pub fn softmax_xent_forward(
    losses: &mut [f32],
    probs: &mut [f32],
    logits: &[f32],
    labels: &[u32],
    b: usize,
    c: usize,
) {
    for i in 0..b {
        let z = &logits[i * c..(i + 1) * c];
        let p = &mut probs[i * c..(i + 1) * c];
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (pj, &zj) in p.iter_mut().zip(z) {
            *pj = (zj - max).exp();
            sum += *pj;
        }
        let inv = 1.0 / sum;
        p.iter_mut().for_each(|pj| *pj *= inv);
        losses[i] = sum.ln() - (z[labels[i] as usize] - max);
    }
}

/// dlogits[B, C] = (probs − onehot(label)) · scale, where scale = 1/(samples in the batch).
pub fn softmax_xent_backward(
    dlogits: &mut [f32],
    probs: &[f32],
    labels: &[u32],
    b: usize,
    c: usize,
    scale: f32,
) {
    for i in 0..b {
        for j in 0..c {
            let t = if labels[i] as usize == j { 1.0 } else { 0.0 };
            dlogits[i * c + j] = (probs[i * c + j] - t) * scale;
        }
    }
}

/// `losses[B]` = mean_j (`logits[b, j]` − onehot(label)_j)²
pub fn mse_forward(losses: &mut [f32], logits: &[f32], labels: &[u32], b: usize, c: usize) {
    for i in 0..b {
        let mut s = 0.0f32;
        for j in 0..c {
            let t = if labels[i] as usize == j { 1.0 } else { 0.0 };
            let d = logits[i * c + j] - t;
            s += d * d;
        }
        losses[i] = s / c as f32;
    }
}

/// dlogits[B, C] = 2 (logits − onehot(label)) / C · scale
pub fn mse_backward(
    dlogits: &mut [f32],
    logits: &[f32],
    labels: &[u32],
    b: usize,
    c: usize,
    scale: f32,
) {
    for i in 0..b {
        for j in 0..c {
            let t = if labels[i] as usize == j { 1.0 } else { 0.0 };
            dlogits[i * c + j] = 2.0 * (logits[i * c + j] - t) / c as f32 * scale;
        }
    }
}

/// sum = Σ losses[0..B] (+ sum with `accumulate`), in f32 like the GPU's reduction.
pub fn loss_reduce(sum: &mut f32, losses: &[f32], b: usize, accumulate: bool) {
    let s: f32 = losses[..b].iter().sum();
    *sum = if accumulate { *sum + s } else { s };
}

/// The dropout mask of one hidden layer at one step: a pure function of (seed, step, layer,
/// index), computed the same way by shaders/dropout.wgsl.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutKey {
    /// seed ^ mix32(global step)
    pub seed: u32,
    /// rng::stream::DROPOUT + layer
    pub stream: u32,
    /// An element is dropped when the hash's top 24 bits fall below this (p·2^24).
    pub threshold: u32,
    /// 1/(1−p), the inverted-dropout scale.
    pub scale: f32,
    /// 1 − p
    pub keep_prob: f32,
}

/// The layer index that keys `--input-dropout`'s masks over the input pixels: far above any
/// hidden layer's, so its stream is its own.
pub const INPUT_DROPOUT_LAYER: usize = 0xFFFF;

impl DropoutKey {
    pub fn new(p: f32, seed: u32, step: u32, layer: usize) -> Self {
        DropoutKey {
            seed: seed ^ crate::rng::mix32(step),
            stream: crate::rng::stream::DROPOUT.wrapping_add(layer as u32),
            threshold: (p as f64 * 16_777_216.0).round() as u32,
            scale: 1.0 / (1.0 - p),
            keep_prob: 1.0 - p,
        }
    }

    /// Whether element `index` (row·width + unit, rows counted from the batch's start) survives.
    #[inline]
    pub fn keep(&self, index: u32) -> bool {
        (crate::rng::hash3(self.seed, self.stream, index) >> 8) >= self.threshold
    }
}

/// act[rows, width] = keep ? act·scale : 0, in place; `row0` is the chunk's first row in the batch.
pub fn dropout_forward(act: &mut [f32], key: &DropoutKey, row0: usize, width: usize) {
    let base = (row0 * width) as u32;
    for (i, a) in act.iter_mut().enumerate() {
        *a = if key.keep(base.wrapping_add(i as u32)) {
            *a * key.scale
        } else {
            0.0
        };
    }
}

/// dact[rows, width] = keep ? dact·scale·f'(act·(1−p)) : 0, where `act` is the dropped output:
/// the gradient through the dropout and the activation together.
pub fn dropout_backward(
    dact: &mut [f32],
    act: &[f32],
    key: &DropoutKey,
    kind: Activation,
    row0: usize,
    width: usize,
) {
    let base = (row0 * width) as u32;
    for (i, (d, &a)) in dact.iter_mut().zip(act).enumerate() {
        let h = a * key.keep_prob;
        let df = match kind {
            Activation::Relu => {
                if h > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => h * (1.0 - h),
            Activation::Tanh => 1.0 - h * h,
        };
        *d = if key.keep(base.wrapping_add(i as u32)) {
            *d * key.scale * df
        } else {
            0.0
        };
    }
}

/// `x[B, 784]` = `images[order[start + b]]` / 255; `y[B]` = `labels[order[start + b]]`.
#[allow(clippy::too_many_arguments)]
pub fn batch_gather(
    x: &mut [f32],
    y: &mut [u32],
    images: &[u8],
    labels: &[u8],
    order: &[u32],
    start: usize,
    b: usize,
) {
    for i in 0..b {
        let s = order[start + i] as usize;
        let src = &images[s * PIXELS..(s + 1) * PIXELS];
        for (dst, &px) in x[i * PIXELS..(i + 1) * PIXELS].iter_mut().zip(src) {
            *dst = px as f32 * (1.0 / 255.0);
        }
        y[i] = labels[s] as u32;
    }
}

/// `x[B, width]` = `features[order[start + b]]`; `y[B]` = `labels[order[start + b]]`: the batch of a
/// split of f32 features (a user's own data, already preprocessed).
#[allow(clippy::too_many_arguments)]
pub fn batch_gather_features(
    x: &mut [f32],
    y: &mut [u32],
    features: &[f32],
    labels: &[u8],
    order: &[u32],
    start: usize,
    b: usize,
    width: usize,
) {
    for i in 0..b {
        let s = order[start + i] as usize;
        x[i * width..(i + 1) * width].copy_from_slice(&features[s * width..(s + 1) * width]);
        y[i] = labels[s] as u32;
    }
}

/// `correct[1]` += #{b : argmax(`logits[b]`) == `label[b]`} (first maximum wins on ties).
pub fn argmax_correct(correct: &mut u32, logits: &[f32], labels: &[u32], b: usize, c: usize) {
    for i in 0..b {
        let row = &logits[i * c..(i + 1) * c];
        let mut best = 0;
        for j in 1..c {
            if row[j] > row[best] {
                best = j;
            }
        }
        if best == labels[i] as usize {
            *correct += 1;
        }
    }
}

/// The output layer's whole step, as shaders/head.wgsl's `output_layer_step` does it in one
/// dispatch; here it is the separate twins in order. `act` [B, H] is the layer's input, `weight`
/// `[10, H]` and `bias` `[10]` its parameters, `hidden` the activation that produced `act` (None for
/// softmax regression, where there is no dact). Writes (or with `accumulate` adds) the weight and
/// bias gradients, writes dact [B, H] = (dlogits·W) ⊙ f'(act), and returns Σ losses.
#[allow(clippy::too_many_arguments)]
pub fn output_layer_step(
    dweight: &mut [f32],
    dbias: &mut [f32],
    dact: &mut [f32],
    act: &[f32],
    weight: &[f32],
    bias: &[f32],
    labels: &[u32],
    b: usize,
    h: usize,
    loss: crate::model::Loss,
    hidden: Option<Activation>,
    scale: f32,
    accumulate: bool,
) -> f32 {
    let c = crate::data::CLASSES;
    let mut logits = vec![0.0; b * c];
    let mut losses = vec![0.0; b];
    let mut dlogits = vec![0.0; b * c];
    matmul_forward(&mut logits, act, weight, bias, b, h, c);
    match loss {
        crate::model::Loss::Xent => {
            let mut probs = vec![0.0; b * c];
            softmax_xent_forward(&mut losses, &mut probs, &logits, labels, b, c);
            softmax_xent_backward(&mut dlogits, &probs, labels, b, c, scale);
        }
        crate::model::Loss::Mse => {
            mse_forward(&mut losses, &logits, labels, b, c);
            mse_backward(&mut dlogits, &logits, labels, b, c, scale);
        }
    }
    matmul_backward_weight(dweight, &dlogits, act, b, h, c, accumulate);
    bias_backward(dbias, &dlogits, b, c, accumulate);
    if let Some(kind) = hidden {
        matmul_backward_input(dact, &dlogits, weight, b, h, c);
        activation_backward(kind, &mut dact[..b * h], &act[..b * h]);
    }
    let mut sum = 0.0;
    loss_reduce(&mut sum, &losses, b, false);
    sum
}

#[cfg(test)]
mod tests {
    //! The narrow products against `gemm` on the same operands, at awkward shapes.
    use super::*;
    use crate::gpu::verify::compare;
    use crate::rng;

    fn rand(n: usize, stream: u32) -> Vec<f32> {
        (0..n)
            .map(|i| rng::uniform(8, stream, i as u32) - 0.5)
            .collect()
    }

    fn close(kernel: &str, shape: (usize, usize, usize), got: &[f32], want: &[f32]) {
        let row = compare(kernel, format!("{shape:?}"), got, want, 1e-5, 1e-4);
        assert!(row.pass(), "{row:?}");
    }

    #[test]
    fn narrow_products_match_gemm() {
        for (b, k, n) in [
            (1, 128, 10),
            (37, 130, 10),
            (5, 7, 16),
            (64, 784, 3),
            (3, 1, 1),
        ] {
            let (x, w, g) = (rand(b * k, 1), rand(n * k, 2), rand(b * n, 3));
            let bias = rand(n, 4);
            let mut want: Vec<f32> = (0..b * n).map(|i| bias[i % n]).collect();
            // The baseline build and the one this CPU runs (AVX2 where it has it).
            let mut plain = want.clone();
            narrow_forward::<false>(&mut plain, &x, &w, b, k, n);
            let mut got = vec![f32::NAN; b * n];
            matmul_forward(&mut got, &x, &w, &bias, b, k, n);
            sgemm(&mut want, true, &x, false, &w, true, b, n, k);
            close("matmul_forward", (b, k, n), &got, &want);
            close("narrow_forward (baseline)", (b, k, n), &plain, &want);
            let (mut got, mut want) = (vec![f32::NAN; b * k], vec![0.0; b * k]);
            matmul_backward_input(&mut got, &g, &w, b, k, n);
            sgemm(&mut want, false, &g, false, &w, false, b, k, n);
            close("matmul_backward_input", (b, k, n), &got, &want);
            for accumulate in [false, true] {
                let mut got = rand(n * k, 5);
                let mut want = got.clone();
                matmul_backward_weight(&mut got, &g, &x, b, k, n, accumulate);
                sgemm(&mut want, accumulate, &g, true, &x, false, n, k, b);
                close("matmul_backward_weight", (b, k, n), &got, &want);
            }
        }
    }
}
