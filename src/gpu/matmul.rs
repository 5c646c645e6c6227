//! The matmul family: the variants and forms of matmul_forward, matmul_backward_input and
//! matmul_backward_weight, the strides of one product, and which shapes each form accepts.

use crate::gpu::kernels::Kernel;
use crate::model::LayerShape;

/// How the matmul forms are picked: `--kernel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum MatmulVariant {
    /// Time the forms valid for the model's shapes on this adapter and take the fastest that
    /// matches the CPU (cached per adapter, driver and shape).
    Auto,
    /// Register blocks per invocation, no barriers (vec4 and subgroup forms where the shapes
    /// allow): what CPU adapters such as lavapipe want.
    Blocked,
    /// 16x16 workgroup tiles in shared memory: what discrete GPUs want.
    Tiled,
}

impl MatmulVariant {
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Auto => "auto",
            MatmulVariant::Blocked => "blocked",
            MatmulVariant::Tiled => "tiled",
        }
    }
}

/// Which implementation of a kernel a dispatch runs. Only the matmuls have more than `Scalar`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// matmul.wgsl (4x4 register blocks, scalar loads, any strides), and every other kernel.
    Scalar,
    /// matmul_vec4.wgsl: 8x8 register blocks with vec4 loads, for 16-byte aligned rows.
    Vec4,
    /// matmul_subgroup_{S}.wgsl: vec4 loads shared through subgroup shuffles, for adapters whose
    /// subgroups are exactly S wide (llvmpipe: 8); matmul_forward and matmul_backward_weight.
    Subgroup,
    /// matmul_input_{S}.wgsl: the subgroup form for the input layer, reading the batch packed
    /// (and matmul_backward_weight's dout) from uniform buffers.
    Input,
    /// matmul_tiled.wgsl: 16x16 workgroup tiles with barriers, any strides.
    Tiled,
}

/// The matmul forms a tuner may time for one product, in the order ties go (the packed Input
/// form is weighed apart: it changes what the gather writes).
pub const CANDIDATES: [Form; 4] = [Form::Subgroup, Form::Vec4, Form::Scalar, Form::Tiled];

impl Form {
    /// The suffix verify's table adds to the kernel's name.
    pub fn suffix(self) -> &'static str {
        match self {
            Form::Scalar => "",
            Form::Vec4 => " (vec4)",
            Form::Subgroup => " (subgroup)",
            Form::Input => " (subgroup, packed input)",
            Form::Tiled => " (tiled)",
        }
    }

    /// The form's name in reports and the tuning cache.
    pub fn name(self) -> &'static str {
        match self {
            Form::Scalar => "scalar",
            Form::Vec4 => "vec4",
            Form::Subgroup => "subgroup",
            Form::Input => "input",
            Form::Tiled => "tiled",
        }
    }

    pub fn from_name(s: &str) -> Option<Form> {
        [
            Form::Scalar,
            Form::Vec4,
            Form::Subgroup,
            Form::Input,
            Form::Tiled,
        ]
        .into_iter()
        .find(|f| f.name() == s)
    }

    /// Whether the form reads and writes whole vec4s (rows must be 16-byte aligned).
    pub fn aligned(self) -> bool {
        matches!(self, Form::Vec4 | Form::Subgroup | Form::Input)
    }

    /// Workgroups for a matrix product whose output C is `rows` x `cols`; `lanes` is the width
    /// the subgroup forms were built for.
    pub fn groups(self, lanes: u32, rows: usize, cols: usize) -> [u32; 3] {
        // (rows, columns) of C per workgroup.
        let (r, c) = match self {
            Form::Scalar => (32, 32),
            Form::Tiled => (16, 16),
            Form::Vec4 => (64, 64),
            // 32 rows; each lane owns four columns.
            Form::Subgroup | Form::Input => (32, 4 * lanes as usize),
        };
        [cols.div_ceil(c) as u32, rows.div_ceil(r) as u32, 1]
    }

    /// Whether this form can run `mm` of `kernel` (the Input form also needs the packed batch,
    /// which the plan decides).
    pub fn accepts(self, kernel: Kernel, mm: &Mm) -> bool {
        let sub = matches!(kernel, Kernel::MatmulForward | Kernel::MatmulBackwardWeight);
        match self {
            Form::Scalar | Form::Tiled => true,
            Form::Vec4 => vec4_ok(kernel, mm),
            Form::Subgroup | Form::Input => sub && vec4_ok(kernel, mm),
        }
    }
}

/// The strides of one matrix product (see shaders/matmul.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    /// matmul_backward_input of layer `l` over `rows` rows: dinp[rows, in] = dout[rows, out]·W.
    pub fn input_grad(l: &LayerShape, rows: usize, flags: u32) -> Self {
        Mm {
            m: rows,
            n: l.inp,
            k: l.out,
            flags,
            a: (0, l.out, 1),
            b: (l.w_off, l.inp, 1),
            c_off: 0,
            bias_off: 0,
        }
    }

    /// The uniform block of matmul.wgsl and its siblings.
    pub fn uniform(&self) -> [u32; 12] {
        let u = |x: usize| x as u32;
        [
            u(self.m),
            u(self.n),
            u(self.k),
            self.flags,
            u(self.a.0),
            u(self.a.1),
            u(self.a.2),
            u(self.b.0),
            u(self.b.1),
            u(self.b.2),
            u(self.c_off),
            u(self.bias_off),
        ]
    }

    /// What identifies the product's shape for tuning: every size, stride and offset (the
    /// epilogue flags change no form's validity and little of its time).
    pub fn key(&self, kernel: Kernel) -> String {
        let (a, b) = (self.a, self.b);
        format!(
            "{} m={} n={} k={} a={},{},{} b={},{},{} c={} bias={}",
            kernel.name(),
            self.m,
            self.n,
            self.k,
            a.0,
            a.1,
            a.2,
            b.0,
            b.1,
            b.2,
            self.c_off,
            self.bias_off
        )
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

/// The form the blocked policy takes: subgroup where built and the rows are aligned, vec4
/// where aligned, scalar otherwise.
pub fn blocked_form(subgroup: bool, kernel: Kernel, mm: &Mm) -> Form {
    if !Form::Vec4.accepts(kernel, mm) {
        Form::Scalar
    } else if subgroup && Form::Subgroup.accepts(kernel, mm) {
        Form::Subgroup
    } else {
        Form::Vec4
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
