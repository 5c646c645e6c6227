//! The matmul family: the variants and forms of matmul_forward, matmul_backward_input and
//! matmul_backward_weight, the strides of one product, and which shapes each form accepts.

use crate::gpu::kernels::Kernel;
use crate::model::LayerShape;

/// Which matmul implementation the pipelines use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MatmulVariant {
    /// 4x4 register blocks per invocation, no barriers: fastest on CPU adapters (lavapipe).
    Blocked,
    /// 16x16 workgroup tiles in shared memory: what discrete GPUs want.
    Tiled,
}

impl MatmulVariant {
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Blocked => "blocked",
            MatmulVariant::Tiled => "tiled",
        }
    }
    /// The output block one workgroup covers, per side.
    pub fn block(self) -> u32 {
        match self {
            MatmulVariant::Blocked => 32,
            MatmulVariant::Tiled => 16,
        }
    }
}

/// Which implementation of a kernel a dispatch runs. Only the matmuls have more than `Scalar`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// matmul.wgsl or matmul_tiled.wgsl (by [`MatmulVariant`]), and every other kernel.
    Scalar,
    /// matmul_vec4.wgsl: 8x8 register blocks with vec4 loads, for 16-byte aligned rows.
    Vec4,
    /// matmul_subgroup.wgsl: vec4 loads shared through subgroup shuffles, for adapters with
    /// 8-wide subgroups (llvmpipe); matmul_forward and matmul_backward_weight only.
    Subgroup,
    /// matmul_input.wgsl: the subgroup form for the input layer, reading the batch packed (and
    /// matmul_backward_weight's dout) from uniform buffers.
    Input,
}

impl Form {
    /// The suffix verify's table adds to the kernel's name.
    pub fn suffix(self) -> &'static str {
        match self {
            Form::Scalar => "",
            Form::Vec4 => " (vec4)",
            Form::Subgroup => " (subgroup)",
            Form::Input => " (subgroup, packed input)",
        }
    }

    /// Workgroups for a matrix product whose output C is `rows` x `cols`.
    pub fn groups(self, variant: MatmulVariant, rows: usize, cols: usize) -> [u32; 3] {
        let side = match self {
            Form::Scalar => variant.block(),
            Form::Vec4 => 64,
            Form::Subgroup | Form::Input => 32,
        } as usize;
        [cols.div_ceil(side) as u32, rows.div_ceil(side) as u32, 1]
    }
}

/// The strides of one matrix product (see shaders/matmul.wgsl).
pub struct Mm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub flags: u32,
    pub a: (usize, usize, usize),
    pub b: (usize, usize, usize),
    pub c_off: usize,
    pub bias_off: usize,
}

impl Mm {
    /// matmul_forward of layer `l` over `rows` rows: out[rows, out] = inp[rows, in]·Wᵀ + b.
    pub fn forward(l: &LayerShape, rows: usize, flags: u32) -> Self {
        Mm {
            m: rows,
            n: l.out,
            k: l.inp,
            flags,
            a: (0, l.inp, 1),
            b: (l.w_off, 1, l.inp),
            c_off: 0,
            bias_off: l.b_off,
        }
    }

    /// matmul_backward_weight of layer `l` over `rows` rows: dW[out, in] (+)= doutᵀ·inp, with
    /// the bias gradient at the bias's offset.
    pub fn weight(l: &LayerShape, rows: usize, flags: u32) -> Self {
        Mm {
            m: l.out,
            n: l.inp,
            k: rows,
            flags,
            a: (0, 1, l.out),
            b: (0, l.inp, 1),
            c_off: l.w_off,
            bias_off: l.b_off,
        }
    }
}

/// Whether the vec4 forms can run `mm`: every row start 16-byte aligned (the strides that step
/// rows, the offsets, and C's rows).
pub fn vec4_ok(kernel: Kernel, mm: &Mm) -> bool {
    let al = |x: usize| x.is_multiple_of(4);
    // store4 reads the bias or the activation as vec4s at bias_off.
    al(mm.n)
        && al(mm.c_off)
        && al(mm.bias_off)
        && match kernel {
            Kernel::MatmulForward => {
                al(mm.k) && al(mm.a.0) && al(mm.a.1) && al(mm.b.0) && al(mm.b.2)
            }
            Kernel::MatmulBackwardInput => {
                al(mm.k) && al(mm.n) && al(mm.a.0) && al(mm.a.1) && al(mm.b.0) && al(mm.b.1)
            }
            _ => al(mm.m) && al(mm.a.0) && al(mm.a.2) && al(mm.b.0) && al(mm.b.1),
        }
}
