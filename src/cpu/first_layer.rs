//! The first layer on the sparse route, split by columns: each thread owns a band of the hidden
//! units, so the rows of weights it reads in the forward pass are the ones it updates, and stay
//! in its core's cache (split by samples instead, half of every step's weight rows would move
//! between the cores twice). The rest of the model splits by samples as on the dense route.
//!
//! The first weight is stored band by band: band j, the outputs `cols(j)`, is [K, n_j] (input
//! major, see [`super::sparse`]) at offset j·K·band.

use std::ops::Range;

use rayon::prelude::*;

use super::Worker;
use super::sparse::{self, BatchColumns, SparseRows};

pub(super) struct SparseFirst {
    pub x: SparseRows,
    /// The first layer's inputs (K) and outputs (N).
    k: usize,
    n: usize,
    /// Outputs per band, a multiple of 8 (one AVX2 register); the last band may be narrower.
    band: usize,
    /// Samples in a chunk: the most a step pushes through the three phases at once.
    pub rows: usize,
    /// h: [bands][rows, band], a chunk's first-layer products; band j at j·rows·band.
    h: Vec<f32>,
    /// dh: [rows, N], the chunk's gradient at the first layer's output (phase two writes it).
    pub dh: Vec<f32>,
    /// The full batch's fixed chunks, when every step may be the whole training set.
    pub whole: Option<WholeBatch>,
}

/// A full-batch step in sample order. The gradient of the whole training set does not depend on
/// the order it is visited in, so such a step runs samples 0..n in chunks that are the same at
/// every step, and each chunk's transpose (by input, for phase three) is built once here rather
/// than at every step.
pub(super) struct WholeBatch {
    /// samples: [n], 0..n.
    pub samples: Vec<u32>,
    /// cols[c][s]: chunk c's non-zeros by input, in pieces of [`SUB_ROWS`] samples (piece s
    /// holds samples c·rows + s·SUB_ROWS..).
    pub cols: Vec<Vec<BatchColumns>>,
}

/// Samples per piece of a whole-batch chunk's columns: a piece's rows of dh (64 samples × a
/// band of 64 outputs, 16 KB) fit in L1 while phase three sums them into each weight row, where
/// a whole chunk's (512 samples, 128 KB) do not. Timed alone on MNIST's chunks, the pass took a
/// median 27% less time in pieces, for one more write of each touched weight row per piece.
const SUB_ROWS: usize = 64;

impl WholeBatch {
    fn new(x: &SparseRows, rows: usize) -> Self {
        let samples: Vec<u32> = (0..x.len() as u32).collect();
        let cols = samples
            .par_chunks(rows)
            .map(|c| c.chunks(SUB_ROWS).map(|s| BatchColumns::of(x, s)).collect())
            .collect();
        WholeBatch { samples, cols }
    }
}

/// What the third phase does with the first layer's output gradient.
#[derive(Clone, Copy)]
pub(super) enum FirstGrad {
    /// Plain SGD at this rate, straight into the weight.
    Fused { lr: f32 },
    /// Form the gradient (adding to it with `accumulate`).
    Grad { accumulate: bool },
}

impl SparseFirst {
    /// With `whole`, the full batch's chunks are prepared (see [`WholeBatch`]).
    pub fn new(x: SparseRows, n: usize, threads: usize, rows: usize, whole: bool) -> Self {
        let k = x.width();
        let n = n.max(1);
        let band = n.div_ceil(threads.max(1)).next_multiple_of(8).min(n.max(1));
        let bands = n.div_ceil(band);
        let whole = (whole && rows <= sparse::MAX_CHUNK).then(|| WholeBatch::new(&x, rows));
        SparseFirst {
            x,
            k,
            n,
            band,
            rows,
            h: vec![0.0; bands * rows * band],
            dh: vec![0.0; rows * n],
            whole,
        }
    }

    fn bands(&self) -> usize {
        self.n.div_ceil(self.band)
    }

    /// Band j's outputs.
    fn cols(&self, j: usize) -> Range<usize> {
        j * self.band..((j + 1) * self.band).min(self.n)
    }

    /// Floats of the first weight in one band (the last may hold fewer): its chunk size.
    pub fn band_len(&self) -> usize {
        self.k * self.band
    }

    /// Where weight (output o, input i) of the reference layout [N, K] lives here.
    fn index(&self, o: usize, i: usize) -> usize {
        let j = o / self.band;
        let c = self.cols(j);
        j * self.k * self.band + i * c.len() + (o - c.start)
    }

    /// The first weight block [N·K] from the reference layout (`to_reference` false) or back.
    pub fn convert(&self, dst: &mut [f32], src: &[f32], to_reference: bool) {
        for o in 0..self.n {
            for i in 0..self.k {
                let (r, b) = (o * self.k + i, self.index(o, i));
                if to_reference {
                    dst[r] = src[b];
                } else {
                    dst[b] = src[r];
                }
            }
        }
    }

    /// Phase one: h = X·W + bias for the chunk's `samples`, each band on its own thread when
    /// `parallel`. w1: [K·N] banded; bias: [N].
    pub fn forward(&mut self, w1: &[f32], bias: &[f32], samples: &[u32], parallel: bool) {
        let bands = self.bands();
        let (x, k, rows, band) = (&self.x, self.k, self.rows, self.band);
        let n = self.n;
        self.h
            .par_chunks_mut(rows * band)
            .zip(w1[..k * n].par_chunks(k * band))
            .enumerate()
            .with_min_len(if parallel { 1 } else { bands })
            .for_each(|(j, (h, w))| {
                let c = j * band..((j + 1) * band).min(n);
                let nj = c.len();
                sparse::sparse_matmul_forward(h, x, samples, &w[..k * nj], &bias[c], nj);
            });
    }

    /// Phase two's input: rows lo..lo + b of the chunk's products into `dst` [b, N].
    pub fn copy_rows(&self, dst: &mut [f32], lo: usize, b: usize) {
        for j in 0..self.bands() {
            let c = self.cols(j);
            let h = &self.h[j * self.rows * self.band..];
            for r in 0..b {
                dst[r * self.n + c.start..][..c.len()]
                    .copy_from_slice(&h[(lo + r) * c.len()..][..c.len()]);
            }
        }
    }

    /// Phase three: from the chunk's output gradient `dh` (for its `samples`), update the
    /// weight or form the gradient in `target` [K·N] banded, each band on its own thread when
    /// `parallel`. Each worker's share of the chunk comes by input (`Worker::cols`, which phase
    /// two filled), one sample alone as its row; or, given `whole` (the chunk's columns built
    /// once), the chunk at once. With `next` (the next chunk's samples and the weight and bias,
    /// which this pass then must not update), each band's thread goes on to the next chunk's
    /// phase one for its band: one parallel pass less per chunk.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        target: &mut [f32],
        workers: &[Worker],
        samples: &[u32],
        what: FirstGrad,
        parallel: bool,
        whole: Option<&[BatchColumns]>,
        next: Option<Next<'_>>,
    ) {
        let bands = self.bands();
        let (x, k, n, band, rows) = (&self.x, self.k, self.n, self.band, self.rows);
        let dh = &self.dh;
        target[..k * n]
            .par_chunks_mut(k * band)
            .zip(self.h.par_chunks_mut(rows * band))
            .enumerate()
            .with_min_len(if parallel { 1 } else { bands })
            .for_each(|(j, (t, h))| {
                let c = j * band..((j + 1) * band).min(n);
                let nj = c.len();
                band_backward(t, x, dh, workers, samples, what, whole, c.clone(), n);
                if let Some(nx) = &next {
                    let w = &nx.w1[j * k * band..][..k * nj];
                    sparse::sparse_matmul_forward(h, x, nx.samples, w, &nx.bias[c], nj);
                }
            });
    }
}

/// The next chunk, for phase three to run its phase one: its samples, the first weight [K·N]
/// banded and its bias [N].
pub(super) struct Next<'a> {
    pub samples: &'a [u32],
    pub w1: &'a [f32],
    pub bias: &'a [f32],
}

/// Phase three for the band of outputs `c` (of `n`): into `t` [K, c.len()].
#[allow(clippy::too_many_arguments)]
fn band_backward(
    t: &mut [f32],
    x: &SparseRows,
    dh: &[f32],
    workers: &[Worker],
    samples: &[u32],
    what: FirstGrad,
    whole: Option<&[BatchColumns]>,
    c: Range<usize>,
    n: usize,
) {
    let nj = c.len();
    if let Some(pieces) = whole {
        for (s, cols) in pieces.iter().enumerate() {
            let dh = &dh[s * SUB_ROWS * n + c.start..];
            match what {
                FirstGrad::Fused { lr } => sparse::sparse_sgd_update_cols(t, cols, dh, lr, nj, n),
                FirstGrad::Grad { accumulate } => {
                    let acc = accumulate || s > 0;
                    sparse::sparse_matmul_backward_weight_cols(t, cols, dh, nj, n, acc)
                }
            }
        }
        return;
    }
    let shares = workers.iter().filter(|w| !w.share.is_empty());
    for (w_i, w) in shares.enumerate() {
        let dh = &dh[w.share.start * n + c.start..];
        let s = &samples[w.share.clone()];
        let one = s.len() == 1;
        match what {
            FirstGrad::Fused { lr } if one => sparse::sparse_sgd_update(t, x, s, dh, lr, nj, n),
            FirstGrad::Fused { lr } => sparse::sparse_sgd_update_cols(t, &w.cols, dh, lr, nj, n),
            FirstGrad::Grad { accumulate } => {
                let acc = accumulate || w_i > 0;
                match one {
                    true => sparse::sparse_matmul_backward_weight(t, x, s, dh, nj, n, acc),
                    false => sparse::sparse_matmul_backward_weight_cols(t, &w.cols, dh, nj, n, acc),
                }
            }
        }
    }
}
