//! The CPU twin of shaders/constraint.wgsl: the max-norm constraint (Srivastava et al. 2014),
//! applied after every update when `--max-norm` is on.

/// weight: `[out, inp]` (PyTorch's layout, row o = unit o's incoming weights): every row whose
/// Euclidean norm exceeds `c` is scaled to norm `c`; the others are left as they are. The sum
/// of squares runs over the inputs in order, in f32, as the banded form below does, so the
/// CPU's two routes scale by the same factors.
pub fn max_norm(weight: &mut [f32], out: usize, inp: usize, c: f32) {
    for row in weight[..out * inp].chunks_exact_mut(inp.max(1)) {
        let sq = row.iter().fold(0.0f32, |s, &w| s + w * w);
        if let Some(f) = shrink(sq, c) {
            row.iter_mut().for_each(|w| *w *= f);
        }
    }
}

/// [`max_norm`] on a weight stored input-major, `[inp, out]` (the sparse route's bands): unit
/// o's incoming weights are column o. Columns go in blocks of 64, their sums on the
/// stack, so a training step does not allocate.
pub fn max_norm_columns(weight: &mut [f32], inp: usize, out: usize, c: f32) {
    let w = &mut weight[..inp * out];
    for c0 in (0..out).step_by(BLOCK) {
        let cols = c0..(c0 + BLOCK).min(out);
        let mut f = [0.0f32; BLOCK];
        let f = &mut f[..cols.len()];
        for i in 0..inp {
            let row = &w[i * out..][cols.clone()];
            f.iter_mut().zip(row).for_each(|(s, &x)| *s += x * x);
        }
        let mut any = false;
        for s in f.iter_mut() {
            *s = shrink(*s, c).inspect(|_| any = true).unwrap_or(1.0);
        }
        if any {
            for i in 0..inp {
                let row = &mut w[i * out..][cols.clone()];
                row.iter_mut().zip(&*f).for_each(|(x, &f)| *x *= f);
            }
        }
    }
}

/// Columns per block in [`max_norm_columns`].
const BLOCK: usize = 64;

/// The factor that brings a vector whose squared norm is `sq` back to norm `c`, when it is
/// longer.
#[inline]
fn shrink(sq: f32, c: f32) -> Option<f32> {
    let norm = sq.sqrt();
    (norm > c).then(|| c / norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_rows_shrink_to_c_and_short_rows_stay() {
        // Row 0 has norm 5 (3-4-0), row 1 norm 1: with c = 2, row 0 becomes (1.2, 1.6, 0).
        let mut w = vec![3.0, 4.0, 0.0, 0.6, 0.0, 0.8];
        max_norm(&mut w, 2, 3, 2.0);
        assert_eq!(w, vec![1.2, 1.6, 0.0, 0.6, 0.0, 0.8]);
        // A row exactly at c is left alone.
        let mut at = vec![0.0, 2.0];
        max_norm(&mut at, 1, 2, 2.0);
        assert_eq!(at, vec![0.0, 2.0]);
    }

    #[test]
    fn columns_match_rows_of_the_transpose() {
        // One block of columns, and more than one with a partial last.
        for (out, inp) in [(5, 7), (150, 3)] {
            columns_case(out, inp);
        }
    }

    fn columns_case(out: usize, inp: usize) {
        let w: Vec<f32> = (0..out * inp)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let mut rows = w.clone();
        max_norm(&mut rows, out, inp, 1.5);
        assert!(
            rows != w,
            "no row was longer than c: the case tests nothing"
        );
        let mut cols: Vec<f32> = (0..inp * out)
            .map(|j| w[(j % out) * inp + j / out])
            .collect();
        max_norm_columns(&mut cols, inp, out, 1.5);
        for o in 0..out {
            for i in 0..inp {
                assert_eq!(rows[o * inp + i], cols[i * out + o], "unit {o} input {i}");
            }
            let n = (0..inp).map(|i| rows[o * inp + i].powi(2)).sum::<f32>();
            assert!(n.sqrt() <= 1.5 + 1e-5, "unit {o} norm {}", n.sqrt());
        }
    }
}
