//! The kernel table: every WGSL entry point, its source file and its bindings, compiled once into
//! pipelines with explicit layouts.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

const MATMUL_COMMON: &str = include_str!("../../shaders/matmul_common.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const MATMUL_VEC4: &str = include_str!("../../shaders/matmul_vec4.wgsl");
const MATMUL_TILED: &str = include_str!("../../shaders/matmul_tiled.wgsl");
const MATMUL_SUBGROUP: &str = include_str!("../../shaders/matmul_subgroup.wgsl");
const MATMUL_INPUT: &str = include_str!("../../shaders/matmul_input.wgsl");
const BIAS: &str = include_str!("../../shaders/bias.wgsl");
const ACTIVATION: &str = include_str!("../../shaders/activation.wgsl");
const LOSS: &str = include_str!("../../shaders/loss.wgsl");
const GATHER: &str = include_str!("../../shaders/gather.wgsl");
const GATHER_FEATURES: &str = include_str!("../../shaders/gather_features.wgsl");
const OPTIM: &str = include_str!("../../shaders/optim.wgsl");
const DROPOUT: &str = include_str!("../../shaders/dropout.wgsl");
const HEAD: &str = include_str!("../../shaders/head.wgsl");
const PRUNE: &str = include_str!("../../shaders/prune.wgsl");

/// Bytes of the uniform arrays of matmul_input.wgsl (the most a uniform binding may hold on most
/// adapters); buffers bound there are at least this large.
pub const UNIFORM_ARRAY: u64 = 65_536;

pub use crate::gpu::matmul::{Form, MatmulVariant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
    /// The dispatch's own uniform block (or a buffer given as its source), bound last.
    Uniform,
    /// A uniform buffer passed in the buffer list like the storage ones.
    UniformBuffer,
}

use Access::{Read as R, ReadWrite as RW, Uniform as U, UniformBuffer as UB};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    MatmulForward,
    MatmulBackwardInput,
    MatmulBackwardWeight,
    BiasBackward,
    ReluForward,
    ReluBackward,
    SigmoidForward,
    SigmoidBackward,
    TanhForward,
    TanhBackward,
    SoftmaxXentForward,
    SoftmaxXentBackward,
    MseForward,
    MseBackward,
    LossReduce,
    ArgmaxCorrect,
    BatchGather,
    BatchGatherFeatures,
    SgdUpdate,
    NesterovUpdate,
    AdamUpdate,
    AdamwUpdate,
    DropoutForward,
    DropoutBackward,
    OutputLayerStep,
    ApplyMask,
}

impl Kernel {
    pub const ALL: [Kernel; 26] = [
        Kernel::MatmulForward,
        Kernel::MatmulBackwardInput,
        Kernel::MatmulBackwardWeight,
        Kernel::BiasBackward,
        Kernel::ReluForward,
        Kernel::ReluBackward,
        Kernel::SigmoidForward,
        Kernel::SigmoidBackward,
        Kernel::TanhForward,
        Kernel::TanhBackward,
        Kernel::SoftmaxXentForward,
        Kernel::SoftmaxXentBackward,
        Kernel::MseForward,
        Kernel::MseBackward,
        Kernel::LossReduce,
        Kernel::ArgmaxCorrect,
        Kernel::BatchGather,
        Kernel::BatchGatherFeatures,
        Kernel::SgdUpdate,
        Kernel::NesterovUpdate,
        Kernel::AdamUpdate,
        Kernel::AdamwUpdate,
        Kernel::DropoutForward,
        Kernel::DropoutBackward,
        Kernel::OutputLayerStep,
        Kernel::ApplyMask,
    ];

    /// The WGSL entry point, and the name of its CPU twin in `cpu::kernels`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::MatmulForward => "matmul_forward",
            Kernel::MatmulBackwardInput => "matmul_backward_input",
            Kernel::MatmulBackwardWeight => "matmul_backward_weight",
            Kernel::BiasBackward => "bias_backward",
            Kernel::ReluForward => "relu_forward",
            Kernel::ReluBackward => "relu_backward",
            Kernel::SigmoidForward => "sigmoid_forward",
            Kernel::SigmoidBackward => "sigmoid_backward",
            Kernel::TanhForward => "tanh_forward",
            Kernel::TanhBackward => "tanh_backward",
            Kernel::SoftmaxXentForward => "softmax_xent_forward",
            Kernel::SoftmaxXentBackward => "softmax_xent_backward",
            Kernel::MseForward => "mse_forward",
            Kernel::MseBackward => "mse_backward",
            Kernel::LossReduce => "loss_reduce",
            Kernel::ArgmaxCorrect => "argmax_correct",
            Kernel::BatchGather => "batch_gather",
            Kernel::BatchGatherFeatures => "batch_gather_features",
            Kernel::SgdUpdate => "sgd_update",
            Kernel::NesterovUpdate => "nesterov_update",
            Kernel::AdamUpdate => "adam_update",
            Kernel::AdamwUpdate => "adamw_update",
            Kernel::DropoutForward => "dropout_forward",
            Kernel::DropoutBackward => "dropout_backward",
            Kernel::OutputLayerStep => "output_layer_step",
            Kernel::ApplyMask => "apply_mask",
        }
    }

    pub fn is_matmul(self) -> bool {
        matches!(
            self,
            Kernel::MatmulForward | Kernel::MatmulBackwardInput | Kernel::MatmulBackwardWeight
        )
    }

    /// Whether `form` exists for this kernel.
    pub fn has_form(self, form: Form) -> bool {
        match form {
            Form::Scalar => true,
            Form::Vec4 => self.is_matmul(),
            Form::Subgroup | Form::Input => {
                matches!(self, Kernel::MatmulForward | Kernel::MatmulBackwardWeight)
            }
        }
    }

    fn source(self, mm: MatmulVariant, form: Form) -> (&'static str, &'static str) {
        match form {
            Form::Vec4 => return ("matmul_vec4.wgsl", MATMUL_VEC4),
            Form::Subgroup => return ("matmul_subgroup.wgsl", MATMUL_SUBGROUP),
            Form::Input => return ("matmul_input.wgsl", MATMUL_INPUT),
            Form::Scalar => {}
        }
        match self {
            Kernel::MatmulForward | Kernel::MatmulBackwardInput | Kernel::MatmulBackwardWeight => {
                match mm {
                    MatmulVariant::Blocked => ("matmul.wgsl", MATMUL),
                    MatmulVariant::Tiled => ("matmul_tiled.wgsl", MATMUL_TILED),
                }
            }
            Kernel::BiasBackward => ("bias.wgsl", BIAS),
            Kernel::ReluForward
            | Kernel::ReluBackward
            | Kernel::SigmoidForward
            | Kernel::SigmoidBackward
            | Kernel::TanhForward
            | Kernel::TanhBackward => ("activation.wgsl", ACTIVATION),
            Kernel::SoftmaxXentForward
            | Kernel::SoftmaxXentBackward
            | Kernel::MseForward
            | Kernel::MseBackward
            | Kernel::LossReduce
            | Kernel::ArgmaxCorrect => ("loss.wgsl", LOSS),
            Kernel::BatchGather => ("gather.wgsl", GATHER),
            Kernel::BatchGatherFeatures => ("gather_features.wgsl", GATHER_FEATURES),
            Kernel::SgdUpdate
            | Kernel::NesterovUpdate
            | Kernel::AdamUpdate
            | Kernel::AdamwUpdate => ("optim.wgsl", OPTIM),
            Kernel::DropoutForward | Kernel::DropoutBackward => ("dropout.wgsl", DROPOUT),
            Kernel::OutputLayerStep => ("head.wgsl", HEAD),
            Kernel::ApplyMask => ("prune.wgsl", PRUNE),
        }
    }

    /// (binding, access) in the order buffers are passed when binding; the uniform comes last.
    pub fn bindings(self) -> &'static [(u32, Access)] {
        match self {
            // c, a, b, aux, then the packed batch and dout for the Input form, then the block.
            Kernel::MatmulForward | Kernel::MatmulBackwardInput | Kernel::MatmulBackwardWeight => {
                &[(0, RW), (1, R), (2, R), (3, R), (8, UB), (9, UB), (4, U)]
            }
            Kernel::BiasBackward => &[(0, RW), (1, R), (2, U)],
            Kernel::ReluForward | Kernel::SigmoidForward | Kernel::TanhForward => {
                &[(0, RW), (2, U)]
            }
            Kernel::ReluBackward | Kernel::SigmoidBackward | Kernel::TanhBackward => {
                &[(0, RW), (1, R), (2, U)]
            }
            Kernel::SoftmaxXentForward => &[(0, RW), (1, RW), (2, R), (3, R), (4, RW), (15, U)],
            Kernel::SoftmaxXentBackward => &[(4, RW), (5, R), (3, R), (15, U)],
            Kernel::MseForward => &[(0, RW), (2, R), (3, R), (4, RW), (15, U)],
            Kernel::MseBackward => &[(4, RW), (2, R), (3, R), (15, U)],
            Kernel::LossReduce => &[(6, RW), (7, RW), (8, R), (15, U)],
            Kernel::ArgmaxCorrect => &[(9, RW), (2, R), (3, R), (15, U)],
            Kernel::BatchGather => &[
                (0, RW),
                (1, RW),
                (2, R),
                (3, R),
                (4, R),
                (5, R),
                (7, RW),
                (6, U),
            ],
            // x, y, part 0, labels, order, state, parts 1 and 2, then the block.
            Kernel::BatchGatherFeatures => &[
                (0, RW),
                (1, RW),
                (2, R),
                (3, R),
                (4, R),
                (5, R),
                (7, R),
                (8, R),
                (6, U),
            ],
            // params, state1, state2, grads, this step's hyper row (a uniform), then the block.
            Kernel::SgdUpdate | Kernel::NesterovUpdate => {
                &[(0, RW), (1, RW), (3, R), (4, UB), (6, U)]
            }
            Kernel::AdamUpdate | Kernel::AdamwUpdate => {
                &[(0, RW), (1, RW), (2, RW), (3, R), (4, UB), (6, U)]
            }
            Kernel::DropoutForward => &[(0, RW), (2, UB), (4, U)],
            Kernel::DropoutBackward => &[(0, RW), (1, R), (2, UB), (4, U)],
            // params, state1, state2, mask, then the block.
            Kernel::ApplyMask => &[(0, RW), (1, RW), (2, RW), (3, R), (4, U)],
            Kernel::OutputLayerStep => &[
                (0, R),
                (1, R),
                (2, RW),
                (3, RW),
                (4, R),
                (5, RW),
                (6, RW),
                (15, U),
            ],
        }
    }
}

pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// All pipelines, built once per device, keyed by kernel and form.
pub struct Kernels {
    pub variant: MatmulVariant,
    /// Whether the subgroup forms were built (the adapter's subgroups are exactly 8 wide).
    pub subgroup: bool,
    /// Whether output_layer_step was built (it needs subgroups at least 8 wide).
    pub head: bool,
    /// Whether the Input form was built (the subgroup form, and 64 KiB uniform bindings).
    pub input: bool,
    pipelines: HashMap<(Kernel, Form), Pipeline>,
}

impl Kernels {
    pub fn new(ctx: &GpuContext, variant: MatmulVariant) -> Result<Self> {
        let mut modules: HashMap<&'static str, wgpu::ShaderModule> = HashMap::new();
        let mut pipelines = HashMap::new();
        let blocked = variant == MatmulVariant::Blocked;
        let subgroup = blocked && ctx.subgroup8;
        let mut forms = vec![Form::Scalar];
        if blocked {
            forms.push(Form::Vec4);
        }
        if subgroup {
            forms.push(Form::Subgroup);
        }
        // The Input form's uniform arrays are 64 KiB.
        let input = subgroup && ctx.limits.max_uniform_buffer_binding_size >= UNIFORM_ARRAY;
        if input {
            forms.push(Form::Input);
        }
        let all = forms
            .iter()
            .flat_map(|&f| Kernel::ALL.into_iter().map(move |k| (k, f)))
            .filter(|(k, f)| k.has_form(*f))
            .filter(|(k, _)| *k != Kernel::OutputLayerStep || ctx.subgroups);
        for (k, form) in all {
            let (file, src) = k.source(variant, form);
            if !modules.contains_key(file) {
                // The matmul files share their bindings and epilogue through matmul_common.wgsl.
                let full = if k.is_matmul() {
                    format!("{MATMUL_COMMON}\n{src}")
                } else {
                    src.to_owned()
                };
                let module = ctx.scoped(&format!("compiling shaders/{file}"), || {
                    ctx.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(file),
                            source: wgpu::ShaderSource::Wgsl(full.into()),
                        })
                })?;
                modules.insert(file, module);
            }
            let module = &modules[file];
            let entries: Vec<wgpu::BindGroupLayoutEntry> = k
                .bindings()
                .iter()
                .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: match access {
                            Access::Uniform | Access::UniformBuffer => {
                                wgpu::BufferBindingType::Uniform
                            }
                            Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                            Access::ReadWrite => {
                                wgpu::BufferBindingType::Storage { read_only: false }
                            }
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let p = ctx.scoped(&format!("building pipeline {}", k.name()), || {
                let layout =
                    ctx.device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(k.name()),
                            entries: &entries,
                        });
                let pl = ctx
                    .device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(k.name()),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
                let pipeline =
                    ctx.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(k.name()),
                            layout: Some(&pl),
                            module,
                            entry_point: Some(k.name()),
                            compilation_options: Default::default(),
                            cache: None,
                        });
                Pipeline { pipeline, layout }
            })?;
            pipelines.insert((k, form), p);
        }
        Ok(Kernels {
            variant,
            subgroup,
            head: ctx.subgroups,
            input,
            pipelines,
        })
    }

    pub fn get(&self, k: Kernel, form: Form) -> Result<&Pipeline> {
        self.pipelines
            .get(&(k, form))
            .ok_or_else(|| Error::Gpu(format!("no pipeline for {}{}", k.name(), form.suffix())))
    }
}
