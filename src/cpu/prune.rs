//! The CPU twin of shaders/prune.wgsl: holding pruned weights at zero during training.

/// Zeroes params, state1 and state2 wherever mask is 0 (mask: 1 keeps a weight, 0 prunes it),
/// so a pruned weight and its momentum or Adam moments stay exactly +0 after every update, even
/// where the update made them NaN. params, state1, state2, mask: `[n]`.
pub fn apply_mask(params: &mut [f32], state1: &mut [f32], state2: &mut [f32], mask: &[f32]) {
    for x in [params, state1, state2] {
        for (v, &m) in x.iter_mut().zip(mask) {
            if m == 0.0 {
                *v = 0.0;
            }
        }
    }
}
