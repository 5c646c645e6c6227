//! The GPU path: WGSL kernels through wgpu, with the data set resident on the device and every
//! step replayed from a prebuilt plan. No host transfer happens inside an epoch except the
//! shuffled order written at its start; the per-step losses are read back once at its end (and
//! every N steps with `--log-every N`).

pub mod backend;
pub mod context;
pub mod device;
pub mod kernels;
pub mod matmul;
pub mod plan;
pub mod tune;
pub mod verify;

use crate::model::Activation;
pub use backend::{Counters, FEATURE_PARTS, GpuBackend};
pub use context::{GpuContext, GpuOptions};
pub use device::Gpu;
pub use kernels::{Form, Kernel, Kernels, MatmulVariant};
pub use plan::build::{
    ADVANCE_HEAD, HEAD_CLASSES, HEAD_DIDENT, HEAD_MAX_ROWS, HEAD_SGD_STEP, head_fits, head_flags,
    head_input, head_words, update_kernel,
};

/// Rows one pass through the network handles at most; a larger batch (full-batch descent) runs
/// as several chunks whose gradients accumulate, keeping every binding far under the limits.
pub const CHUNK_ROWS: usize = 8192;
/// Test-set rows per evaluation chunk.
pub const EVAL_ROWS: usize = 2000;
/// Steps recorded into one command buffer and submitted together.
pub const STEPS_PER_SUBMIT: usize = 64;
/// Submissions allowed in flight before the host waits for the oldest: bounds queued memory.
pub(crate) const MAX_IN_FLIGHT: usize = 2;

// Flag bits shared with the WGSL files (matmul_common.wgsl, loss.wgsl, gather.wgsl).
pub(crate) const ADD_BIAS: u32 = 1;
pub(crate) const ACCUMULATE: u32 = 2;
/// matmul_backward_weight also writes the bias gradient (matmul_common.wgsl).
pub const BIAS_GRAD: u32 = 256;
/// matmul_backward_weight applies plain SGD to the parameters in place of writing the gradient
/// (matmul_common.wgsl; vec4 forms only).
pub const SGD_STEP: u32 = 512;

/// The matmul epilogue flags that apply an activation, and its derivative.
pub fn act_flags(a: Activation) -> (u32, u32) {
    match a {
        Activation::Relu => (4, 32),
        Activation::Sigmoid => (8, 64),
        Activation::Tanh => (16, 128),
    }
}
pub(crate) const SLOT_FROM_STATE: u32 = 4;
pub(crate) const ADVANCE: u32 = 8;
pub(crate) const WITH_GRAD: u32 = 16;
pub(crate) const FROM_STATE: u32 = 1;
/// batch_gather writes the batch packed, to xb (see shaders/gather.wgsl).
pub const PACKED: u32 = 2;
