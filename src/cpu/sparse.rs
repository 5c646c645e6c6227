//! The first layer over a sparse input: about 81% of MNIST's pixels are 0, so the product with
//! the first weight matrix, its gradient and (for plain SGD) its update only need the rows of
//! the non-zero pixels. These are CPU-only fast paths, not twins of a WGSL kernel; tests check
//! each against the dense twins in [`super::kernels`].
//!
//! Here the first layer's weight is stored transposed, `wt` [K, N] (input-major), so one input
//! position is one contiguous row of N weights: a non-zero pixel costs one N-wide multiply-add.

use super::simd::{dispatch, madd, simd_body};
use crate::data::Dataset;

/// Above this share of non-zero inputs the dense `gemm` path is faster than skipping zeros.
pub const MAX_DENSITY: f64 = 0.5;

/// Columns kept in registers at once: 64 floats are 8 AVX2 registers, leaving room for the
/// broadcast value (an AVX2 core has 16).
const BLOCK: usize = 64;

/// A split's inputs as compressed sparse rows, built once: the data is resident, so a batch is
/// just its sample indices.
#[derive(Clone, Debug, Default)]
pub struct SparseRows {
    /// start: [n + 1]; sample s's entries are start[s]..start[s + 1].
    start: Vec<usize>,
    /// index: [nnz] input positions, increasing within a sample.
    index: Vec<u32>,
    /// value: [nnz], exactly the floats the dense gather produces.
    value: Vec<f32>,
    width: usize,
}

impl SparseRows {
    /// The split's non-zero inputs, or None when it is too dense for this to pay
    /// ([`MAX_DENSITY`]) or empty.
    pub fn build(data: &Dataset) -> Option<Self> {
        let w = data.width;
        let n = data.len();
        if n == 0 || w == 0 || w > u32::MAX as usize {
            return None;
        }
        let nnz = if data.is_pixels() {
            data.images.iter().filter(|&&p| p != 0).count()
        } else {
            data.features.iter().filter(|&&v| v != 0.0).count()
        };
        if nnz as f64 > MAX_DENSITY * (n * w) as f64 {
            return None;
        }
        let mut s = SparseRows {
            start: Vec::with_capacity(n + 1),
            index: Vec::with_capacity(nnz),
            value: Vec::with_capacity(nnz),
            width: w,
        };
        s.start.push(0);
        if data.is_pixels() {
            for img in data.images.chunks_exact(w) {
                for (j, &p) in img.iter().enumerate().filter(|(_, p)| **p != 0) {
                    s.index.push(j as u32);
                    // The same float as kernels::batch_gather makes.
                    s.value.push(p as f32 * (1.0 / 255.0));
                }
                s.start.push(s.index.len());
            }
        } else {
            for row in data.features.chunks_exact(w) {
                for (j, &v) in row.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                    s.index.push(j as u32);
                    s.value.push(v);
                }
                s.start.push(s.index.len());
            }
        }
        Some(s)
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inputs per sample.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The share of inputs that are not zero.
    pub fn density(&self) -> f64 {
        self.index.len() as f64 / (self.len() * self.width).max(1) as f64
    }

    /// Sample `s`'s positions and values.
    #[inline]
    fn row(&self, s: usize) -> (&[u32], &[f32]) {
        let r = self.start[s]..self.start[s + 1];
        (&self.index[r.clone()], &self.value[r])
    }
}

/// A chunk's non-zeros by input position (the transpose of its rows), rebuilt per chunk in
/// buffers allocated once. Walking a weight row's inputs together lets the gradient of a row
/// be summed in registers and written once, instead of once per sample.
#[derive(Clone, Debug, Default)]
pub struct BatchColumns {
    /// start: [K + 1]; input i's entries are start[i]..start[i + 1].
    start: Vec<u32>,
    /// cursor: [K], filling positions.
    cursor: Vec<u32>,
    /// row: [nnz], the entry's sample as a position in the chunk (16 bits: a chunk holds at
    /// most [`MAX_CHUNK`] samples, and the column pass reads fewer bytes); value: [nnz].
    row: Vec<u16>,
    value: Vec<f32>,
}

/// The most samples one [`BatchColumns`] holds.
pub const MAX_CHUNK: usize = 1 << 16;

impl BatchColumns {
    /// Room for chunks of up to `rows` (at most [`MAX_CHUNK`]) samples of `width` inputs.
    pub fn new(width: usize, rows: usize) -> Self {
        assert!(rows <= MAX_CHUNK, "a chunk of {rows} rows");
        BatchColumns {
            start: vec![0; width + 1],
            cursor: vec![0; width],
            row: Vec::with_capacity(rows * width),
            value: Vec::with_capacity(rows * width),
        }
    }

    /// The non-zeros of `samples` `[B]` (B at most [`MAX_CHUNK`]), by input, in buffers of
    /// exactly their size: for columns built once and kept.
    pub fn of(x: &SparseRows, samples: &[u32]) -> Self {
        assert!(
            samples.len() <= MAX_CHUNK,
            "a chunk of {} rows",
            samples.len()
        );
        let mut c = BatchColumns {
            start: vec![0; x.width + 1],
            cursor: vec![0; x.width],
            ..Default::default()
        };
        c.fill(x, samples);
        c
    }

    /// The non-zeros of `samples` `[B]` (B at most the rows given to `new`), by input.
    pub fn fill(&mut self, x: &SparseRows, samples: &[u32]) {
        self.start.fill(0);
        for &s in samples {
            for &i in x.row(s as usize).0 {
                self.start[i as usize + 1] += 1;
            }
        }
        for i in 0..x.width {
            self.start[i + 1] += self.start[i];
        }
        let nnz = self.start[x.width] as usize;
        self.row.resize(nnz, 0);
        self.value.resize(nnz, 0.0);
        self.cursor.copy_from_slice(&self.start[..x.width]);
        for (b, &s) in samples.iter().enumerate() {
            let (idx, val) = x.row(s as usize);
            for (&i, &v) in idx.iter().zip(val) {
                let at = &mut self.cursor[i as usize];
                self.row[*at as usize] = b as u16;
                self.value[*at as usize] = v;
                *at += 1;
            }
        }
    }

    fn width(&self) -> usize {
        self.cursor.len()
    }
}

/// `out[B, N]` = `X[B, K]` · `wt[K, N]` + `bias[N]`, where X's rows are the samples `samples` `[B]` of `x`.
pub fn sparse_matmul_forward(
    out: &mut [f32],
    x: &SparseRows,
    samples: &[u32],
    wt: &[f32],
    bias: &[f32],
    n: usize,
) {
    dispatch!(forward_body(out, x, samples, wt, bias, n))
}

/// dwt[K, N] (+)= X[B, K]ᵀ · dout[B, N] (X as in [`sparse_matmul_forward`]; dout's rows `ld`
/// apart, so N may be a band of a wider gradient); without `accumulate` it is cleared first.
pub fn sparse_matmul_backward_weight(
    dwt: &mut [f32],
    x: &SparseRows,
    samples: &[u32],
    dout: &[f32],
    n: usize,
    ld: usize,
    accumulate: bool,
) {
    if !accumulate {
        dwt[..x.width * n].fill(0.0);
    }
    dispatch!(scatter_body(dwt, x, samples, dout, n, ld, 1.0))
}

/// Plain SGD on the first layer without forming its gradient:
/// wt[K, N] −= lr · X[B, K]ᵀ · dout[B, N] (dout's rows `ld` apart). Only the rows of non-zero
/// inputs change: a step costs the batch's non-zeros times N, not K·N.
pub fn sparse_sgd_update(
    wt: &mut [f32],
    x: &SparseRows,
    samples: &[u32],
    dout: &[f32],
    lr: f32,
    n: usize,
    ld: usize,
) {
    dispatch!(scatter_body(wt, x, samples, dout, n, ld, -lr))
}

/// [`sparse_matmul_backward_weight`] from the chunk's columns (`cols` filled from the same
/// samples): each row of dwt is summed in registers and written once.
pub fn sparse_matmul_backward_weight_cols(
    dwt: &mut [f32],
    cols: &BatchColumns,
    dout: &[f32],
    n: usize,
    ld: usize,
    accumulate: bool,
) {
    dispatch!(columns_body(dwt, cols, dout, n, ld, 1.0, !accumulate))
}

/// [`sparse_sgd_update`] from the chunk's columns: each non-zero input's weight row takes the
/// batch's whole update at once.
pub fn sparse_sgd_update_cols(
    wt: &mut [f32],
    cols: &BatchColumns,
    dout: &[f32],
    lr: f32,
    n: usize,
    ld: usize,
) {
    dispatch!(columns_body(wt, cols, dout, n, ld, -lr, false))
}

simd_body! {
fn forward_body(
    out: &mut [f32],
    x: &SparseRows,
    samples: &[u32],
    wt: &[f32],
    bias: &[f32],
    n: usize,
) {
    for (row, &s) in out[..samples.len() * n].chunks_exact_mut(n).zip(samples) {
        let (idx, val) = x.row(s as usize);
        let mut c0 = 0;
        // Each block of columns accumulates in registers over the sample's non-zeros.
        while c0 + BLOCK <= n {
            let mut acc = [0.0f32; BLOCK];
            acc.copy_from_slice(&bias[c0..c0 + BLOCK]);
            for (&i, &v) in idx.iter().zip(val) {
                let w = &wt[i as usize * n + c0..][..BLOCK];
                for (a, &wj) in acc.iter_mut().zip(w) {
                    *a = madd::<FMA>(v, wj, *a);
                }
            }
            row[c0..c0 + BLOCK].copy_from_slice(&acc);
            c0 += BLOCK;
        }
        if c0 < n {
            let tail = &mut row[c0..];
            tail.copy_from_slice(&bias[c0..n]);
            for (&i, &v) in idx.iter().zip(val) {
                let w = &wt[i as usize * n + c0..(i as usize + 1) * n];
                for (a, &wj) in tail.iter_mut().zip(w) {
                    *a = madd::<FMA>(v, wj, *a);
                }
            }
        }
    }
}

}

simd_body! {
/// dst[K, N] += alpha · X[B, K]ᵀ · dout[B, N], one sample at a time: each non-zero input adds
/// its row of dout, scaled, to its row of dst.
fn scatter_body(
    dst: &mut [f32],
    x: &SparseRows,
    samples: &[u32],
    dout: &[f32],
    n: usize,
    ld: usize,
    alpha: f32,
) {
    let dst = &mut dst[..x.width * n];
    for (b, &s) in samples.iter().enumerate() {
        let g = &dout[b * ld..][..n];
        let (idx, val) = x.row(s as usize);
        let mut c0 = 0;
        // The block of dout stays in registers while it is added to every non-zero's row.
        while c0 + BLOCK <= n {
            let mut gb = [0.0f32; BLOCK];
            gb.copy_from_slice(&g[c0..c0 + BLOCK]);
            for (&i, &v) in idx.iter().zip(val) {
                let a = alpha * v;
                let d = &mut dst[i as usize * n + c0..][..BLOCK];
                for (dj, &gj) in d.iter_mut().zip(&gb) {
                    *dj = madd::<FMA>(a, gj, *dj);
                }
            }
            c0 += BLOCK;
        }
        if c0 < n {
            for (&i, &v) in idx.iter().zip(val) {
                let a = alpha * v;
                let d = &mut dst[i as usize * n + c0..(i as usize + 1) * n];
                for (dj, &gj) in d.iter_mut().zip(&g[c0..]) {
                    *dj = madd::<FMA>(a, gj, *dj);
                }
            }
        }
    }
}
}

simd_body! {
/// dst[K, N] = (or +=) alpha · X[B, K]ᵀ · dout[B, N] by input: the rows of dout of the samples
/// where input i is non-zero, weighted, are summed in registers, then dst's row i is written.
fn columns_body(
    dst: &mut [f32],
    cols: &BatchColumns,
    dout: &[f32],
    n: usize,
    ld: usize,
    alpha: f32,
    overwrite: bool,
) {
    for i in 0..cols.width() {
        let e = cols.start[i] as usize..cols.start[i + 1] as usize;
        let d = &mut dst[i * n..(i + 1) * n];
        if e.is_empty() {
            if overwrite {
                d.fill(0.0);
            }
            continue;
        }
        let (rows, vals) = (&cols.row[e.clone()], &cols.value[e]);
        let mut c0 = 0;
        while c0 < n {
            // A full block in registers; the tail (n not a multiple of 64) in a prefix of it.
            let w = BLOCK.min(n - c0);
            let mut acc = [0.0f32; BLOCK];
            if w == BLOCK {
                for (&r, &v) in rows.iter().zip(vals) {
                    let g = &dout[r as usize * ld + c0..][..BLOCK];
                    for (a, &gj) in acc.iter_mut().zip(g) {
                        *a = madd::<FMA>(v, gj, *a);
                    }
                }
            } else {
                for (&r, &v) in rows.iter().zip(vals) {
                    let g = &dout[r as usize * ld + c0..][..w];
                    for (a, &gj) in acc.iter_mut().zip(g) {
                        *a = madd::<FMA>(v, gj, *a);
                    }
                }
            }
            for (dj, &a) in d[c0..c0 + w].iter_mut().zip(&acc) {
                *dj = if overwrite { alpha * a } else { madd::<FMA>(alpha, a, *dj) };
            }
            c0 += w;
        }
    }
}
}

/// `y[B]` = `labels[samples[b]]`: the labels of a batch whose inputs stay in a [`SparseRows`].
pub fn gather_labels(y: &mut [u32], labels: &[u8], samples: &[u32]) {
    for (dst, &s) in y.iter_mut().zip(samples) {
        *dst = labels[s as usize] as u32;
    }
}

#[cfg(test)]
mod tests {
    //! Each fast path against the dense twins on seeded sparse inputs, at awkward widths (the
    //! 64-column blocks, a tail, and widths below one block).
    use super::*;
    use crate::cpu::kernels::{
        batch_gather, batch_gather_features, matmul_backward_weight, matmul_forward,
    };
    use crate::cpu::optim::sgd_update;
    use crate::gpu::verify::compare;
    use crate::rng;

    /// n samples of `width` inputs, about `keep` of them non-zero: pixels or f32 features.
    fn sparse_data(n: usize, width: usize, keep: f32, pixels: bool) -> Dataset {
        let labels = vec![0u8; n];
        let on = |i: usize| rng::uniform(3, 1, i as u32) < keep;
        if pixels {
            let images = (0..n * width)
                .map(|i| {
                    if on(i) {
                        1 + (rng::hash3(3, 2, i as u32) % 255) as u8
                    } else {
                        0
                    }
                })
                .collect();
            Dataset {
                width,
                ..Dataset::pixels(images, labels)
            }
        } else {
            let f = (0..n * width)
                .map(|i| {
                    if on(i) {
                        rng::uniform(3, 4, i as u32) - 0.5
                    } else {
                        0.0
                    }
                })
                .collect();
            Dataset::floats(f, labels, width, 10)
        }
    }

    /// The dense inputs of `samples`, as the dense gather makes them: [B, width].
    fn dense_rows(data: &Dataset, samples: &[u32]) -> Vec<f32> {
        let (b, w) = (samples.len(), data.width);
        let mut x = vec![0.0; b * w];
        let mut y = vec![0; b];
        if data.is_pixels() {
            for (s, row) in samples.iter().zip(x.chunks_exact_mut(w)) {
                // batch_gather is MNIST-shaped; the same scaling at any width.
                let src = &data.images[*s as usize * w..][..w];
                row.iter_mut()
                    .zip(src)
                    .for_each(|(d, &p)| *d = p as f32 * (1.0 / 255.0));
            }
        } else {
            batch_gather_features(
                &mut x,
                &mut y,
                &data.features,
                &data.labels,
                samples,
                0,
                b,
                w,
            );
        }
        x
    }

    fn rand(n: usize, stream: u32) -> Vec<f32> {
        (0..n)
            .map(|i| rng::uniform(5, stream, i as u32) - 0.5)
            .collect()
    }

    /// Within float rounding of the twin: atol + rtol·|ref|, as the GPU parity checks use.
    fn assert_close(kernel: &str, shape: String, got: &[f32], want: &[f32]) {
        let row = compare(kernel, shape, got, want, 1e-5, 1e-4);
        assert!(row.pass(), "{row:?}");
    }

    /// weight [n, k] → [k, n]
    fn transpose(w: &[f32], n: usize, k: usize) -> Vec<f32> {
        (0..k * n).map(|i| w[(i % n) * k + i / n]).collect()
    }

    const SHAPES: [(usize, usize, bool); 5] = [
        (784, 128, true),
        (784, 100, true),
        (50, 10, false),
        (33, 200, false),
        (300, 64, true),
    ];

    #[test]
    fn builds_only_when_sparse_and_keeps_the_gathered_values() {
        let d = sparse_data(40, 784, 0.2, true);
        let x = SparseRows::build(&d).expect("20% non-zero is sparse");
        assert_eq!((x.len(), x.width()), (40, 784));
        assert!((x.density() - 0.2).abs() < 0.02, "{}", x.density());
        for s in [0, 17, 39] {
            let (idx, val) = x.row(s);
            let mut row = vec![0.0; 784];
            idx.iter().zip(val).for_each(|(&i, &v)| row[i as usize] = v);
            let mut want = vec![0.0; 784];
            batch_gather(&mut want, &mut [0], &d.images, &d.labels, &[s as u32], 0, 1);
            assert!(row == want, "sample {s}: not the gathered floats");
            assert!(idx.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(SparseRows::build(&sparse_data(40, 784, 0.7, true)).is_none());
        assert!(SparseRows::build(&Dataset::default()).is_none());
    }

    #[test]
    fn forward_matches_the_dense_twin() {
        for (k, n, pixels) in SHAPES {
            let d = sparse_data(37, k, 0.2, pixels);
            let x = SparseRows::build(&d).expect("sparse");
            for samples in [&[5u32][..], &[3, 36, 0, 7, 7, 12, 30]] {
                let b = samples.len();
                let (w, bias) = (rand(n * k, 1), rand(n, 2));
                let mut want = vec![0.0; b * n];
                matmul_forward(&mut want, &dense_rows(&d, samples), &w, &bias, b, k, n);
                let mut got = vec![f32::NAN; b * n];
                sparse_matmul_forward(&mut got, &x, samples, &transpose(&w, n, k), &bias, n);
                assert_close("sparse_matmul_forward", format!("{b}x{k}x{n}"), &got, &want);
            }
        }
    }

    /// Columns c0..c0 + nb of dout [b, n]: [b, nb].
    fn band(dout: &[f32], n: usize, c0: usize, nb: usize) -> Vec<f32> {
        dout.chunks_exact(n)
            .flat_map(|r| r[c0..c0 + nb].to_vec())
            .collect()
    }

    #[test]
    fn weight_gradient_matches_the_dense_twin() {
        for (k, n, pixels) in SHAPES {
            let d = sparse_data(37, k, 0.2, pixels);
            let x = SparseRows::build(&d).expect("sparse");
            let samples = [3u32, 36, 0, 7, 7, 12, 30, 1, 2];
            let b = samples.len();
            // A band of a wider gradient: columns 3..3 + n of rows n + 5 wide.
            let ld = n + 5;
            let wide = rand(b * ld, 3);
            let dout = band(&wide, ld, 3, n);
            for accumulate in [false, true] {
                let start = rand(n * k, 4);
                let mut want = start.clone();
                let xs = dense_rows(&d, &samples);
                matmul_backward_weight(&mut want, &dout, &xs, b, k, n, accumulate);
                let mut got = transpose(&start, n, k);
                sparse_matmul_backward_weight(
                    &mut got,
                    &x,
                    &samples,
                    &wide[3..],
                    n,
                    ld,
                    accumulate,
                );
                assert_close(
                    "sparse_matmul_backward_weight",
                    format!("{b}x{k}x{n} accumulate {accumulate}"),
                    &got,
                    &transpose(&want, n, k),
                );
            }
        }
    }

    #[test]
    fn fused_sgd_matches_gradient_then_sgd_update() {
        for (k, n, pixels) in SHAPES {
            let d = sparse_data(37, k, 0.2, pixels);
            let x = SparseRows::build(&d).expect("sparse");
            for samples in [&[9u32][..], &[3, 36, 0, 7, 7, 12, 30, 1, 2]] {
                let b = samples.len();
                let ld = n + 8;
                let (wide, w, lr) = (rand(b * ld, 3), rand(n * k, 4), 0.3);
                let dout = band(&wide, ld, 8, n);
                let mut grad = vec![0.0; n * k];
                matmul_backward_weight(&mut grad, &dout, &dense_rows(&d, samples), b, k, n, false);
                let mut want = w.clone();
                sgd_update(&mut want, &mut vec![0.0; n * k], &grad, lr, 0.0, 0.0);
                let want = transpose(&want, n, k);
                let mut got = transpose(&w, n, k);
                sparse_sgd_update(&mut got, &x, samples, &wide[8..], lr, n, ld);
                assert_close("sparse_sgd_update", format!("{b}x{k}x{n}"), &got, &want);
                let mut got = transpose(&w, n, k);
                let mut cols = BatchColumns::new(k, b);
                cols.fill(&x, samples);
                sparse_sgd_update_cols(&mut got, &cols, &wide[8..], lr, n, ld);
                assert_close(
                    "sparse_sgd_update_cols",
                    format!("{b}x{k}x{n}"),
                    &got,
                    &want,
                );
            }
        }
    }
}
