//! The primitive kernels, one module per family. A family is one shader file,
//! `shaders/<family>.wgsl`, and everything about its kernels lives in the module of the same name:
//! the kernel description (the type a [`Kernel`] variant wraps), its buffer slots, the `#[repr(C)]`
//! parameter block that the shader's `Params` struct mirrors field for field, its workgroup counts,
//! and its CPU twin (same formula, same order of operations).
//!
//! Each family implements the crate-private `Family` trait; [`Kernel`] has one variant per family
//! and delegates to it, so the backends (`crate::cpu`, `crate::gpu`) have no per-kernel code.
//! Buffers are passed separately, in the order that [`Kernel::slots`] lists them; outputs first.

/// The WGSL text of a shader file in `shaders/`, through the crate's `shaders` link (see build.rs).
macro_rules! shader {
    ($family:literal) => {
        include_str!(concat!(env!("KILN_SHADER_DIR"), "/", $family, ".wgsl"))
    };
}

pub mod binary;
pub mod cast;
pub mod conv;
pub mod glu;
pub mod layer_norm;
pub mod layout;
pub mod loss;
pub mod loss_scale;
pub mod matmul;
pub mod memory;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rope;
pub mod running;
mod sgemm;
pub mod simd;
pub mod softmax;
pub(crate) mod twin;
pub mod unary;

pub use binary::{Binary, BinaryOp, Broadcast};
pub use cast::Cast;
pub use conv::{Conv, Window2d};
pub use glu::Glu;
pub use layer_norm::LayerNorm;
pub use layout::{Layout, Permute};
pub use loss::Loss;
pub use loss_scale::LossScale;
pub use matmul::{Addend, Matmul, MatmulTile};
pub use memory::Memory;
pub use optim::{AdamHyper, Optim, RmspropHyper, SgdHyper, HYPER_LEN};
pub use pool::Pooling;
pub use reduce::{Reduce, ReduceOp};
pub use rope::Rope;
pub use running::RunningUpdate;
pub use sgemm::Gemm;
pub use softmax::Softmax;
pub use unary::{fast_exp, normal_cdf_exp, sigmoid, tanh, Saved, Unary, UnaryOp};

use crate::error::{Error, Result};
use crate::DType;
use twin::{In, Out, Par};

/// The most dimensions a broadcast or a permutation supports.
pub const MAX_RANK: usize = 4;

/// Bytes of the uniform block every entry point reads at binding 0 (a family's `Params`, zero-padded).
pub const PARAMS_BYTES: usize = 64;

/// The WGSL helpers every family's source is prefixed with (`shaders/common.wgsl`).
pub const COMMON_WGSL: &str = shader!("common");

/// What a kernel family provides. `Kernel` delegates every method to the family it wraps.
pub(crate) trait Family {
    /// The shader file (in `shaders/`, without `.wgsl`).
    const SHADER: &'static str;
    /// That file's text.
    const SOURCE: &'static str;
    /// The uniform block at binding 0, mirrored by the shader's `Params` struct.
    type Params: bytemuck::Pod;

    /// The WGSL entry point, which is also the kernel's name in errors.
    fn name(&self) -> &'static str;
    /// The buffers of one launch, in the order a launch passes them.
    fn slots(&self) -> Vec<Slot>;
    /// Rejects parameters no backend can run (zero-sized work, bad scalars).
    fn validate(&self) -> Result<()>;
    fn params(&self) -> Self::Params;
    /// Workgroups to dispatch on the GPU (x, y, z).
    fn workgroups(&self) -> [u32; 3];
    /// Values of the entry point's WGSL `override` constants (by name). The GPU backend builds one
    /// pipeline per entry point and values; most families have none.
    fn overrides(&self) -> Vec<(&'static str, u32)> {
        Vec::new()
    }
    /// Bindings the shader declares that this variant does not use (an `override` switches the
    /// code off, but wgpu still requires them in the layout): the GPU backend binds a small
    /// placeholder buffer there. Read-only storage; most families have none.
    fn unused_bindings(&self) -> Vec<u32> {
        Vec::new()
    }
    /// The CPU twin. `outs` and `ins` are the Write and Read slots, each in slot order, already
    /// checked against [`Family::slots`].
    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par);
    /// Checks the read buffers' contents before [`Family::run_cpu`] (indices a kernel cannot
    /// skip on the CPU); most families have nothing to check.
    fn check_cpu(&self, _ins: &[In<'_>]) -> Result<()> {
        Ok(())
    }
}

/// One kernel launch: a family's kernel with its sizes and scalar parameters. Every tensor is dense
/// and row-major; sizes are element counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// `shaders/matmul.wgsl`: batched matmul.
    Matmul(Matmul),
    /// `shaders/unary.wgsl`: elementwise ops, their backward, the fused bias + activation.
    Unary(Unary),
    /// `shaders/binary.wgsl`: broadcast binary ops.
    Binary(Binary),
    /// `shaders/reduce.wgsl`: sum, mean, max, argmax over one axis.
    Reduce(Reduce),
    /// `shaders/softmax.wgsl`: (log-)softmax, scaled and optionally causal, and backward.
    Softmax(Softmax),
    /// `shaders/layer_norm.wgsl`: layer norm and RMS norm without the affine, and backward.
    LayerNorm(LayerNorm),
    /// `shaders/loss.wgsl`: losses and their gradients.
    Loss(Loss),
    /// `shaders/conv.wgsl`: im2col / col2im.
    Conv(Conv),
    /// `shaders/layout.wgsl`: permute, slice / pad.
    Layout(Layout),
    /// `shaders/optim.wgsl`: in-place optimizer updates.
    Optim(Optim),
    /// `shaders/memory.wgsl`: gather, scatter-add, fill, copy.
    Memory(Memory),
    /// `shaders/running.wgsl`: in-place running statistics.
    Running(RunningUpdate),
    /// `shaders/glu.wgsl`: the SwiGLU product and its backward.
    Glu(Glu),
    /// `shaders/rope.wgsl`: rotary position embedding and its inverse.
    Rope(Rope),
    /// `shaders/cast.wgsl`: f32 <-> f16 and f32 <-> bf16 conversions.
    Cast(Cast),
    /// `shaders/loss_scale.wgsl`: dynamic loss scaling (unscale with the overflow check, the
    /// scaler's step).
    LossScale(LossScale),
    /// `shaders/pool.wgsl`: max pooling and its backward.
    Pooling(Pooling),
}

/// Runs `$e` with `$f` bound to the family value inside `$k`: one arm per family.
macro_rules! each_family {
    ($k:expr, $f:ident => $e:expr) => {
        match $k {
            Kernel::Matmul($f) => $e,
            Kernel::Unary($f) => $e,
            Kernel::Binary($f) => $e,
            Kernel::Reduce($f) => $e,
            Kernel::Softmax($f) => $e,
            Kernel::LayerNorm($f) => $e,
            Kernel::Loss($f) => $e,
            Kernel::Conv($f) => $e,
            Kernel::Layout($f) => $e,
            Kernel::Optim($f) => $e,
            Kernel::Memory($f) => $e,
            Kernel::Running($f) => $e,
            Kernel::Glu($f) => $e,
            Kernel::Rope($f) => $e,
            Kernel::Cast($f) => $e,
            Kernel::LossScale($f) => $e,
            Kernel::Pooling($f) => $e,
        }
    };
}

macro_rules! from_family {
    ($($t:ident => $v:ident),*) => {
        $(impl From<$t> for Kernel {
            fn from(k: $t) -> Kernel {
                Kernel::$v(k)
            }
        })*
    };
}
from_family!(Matmul => Matmul, Unary => Unary, Binary => Binary, Reduce => Reduce, Softmax => Softmax,
    LayerNorm => LayerNorm, Loss => Loss, Conv => Conv, Layout => Layout, Optim => Optim,
    Memory => Memory, RunningUpdate => Running, Glu => Glu, Rope => Rope, Cast => Cast,
    LossScale => LossScale, Pooling => Pooling);

fn source_of<F: Family>(_: &F) -> &'static str {
    F::SOURCE
}

fn shader_of<F: Family>(_: &F) -> &'static str {
    F::SHADER
}

/// A family's parameter block as the 16 words of the uniform block.
fn pack<P: bytemuck::Pod>(p: &P) -> [u32; PARAMS_BYTES / 4] {
    const { assert!(std::mem::size_of::<P>() <= PARAMS_BYTES) };
    let mut w = [0u32; PARAMS_BYTES / 4];
    let bytes = bytemuck::bytes_of(p);
    bytemuck::cast_slice_mut::<u32, u8>(&mut w)[..bytes.len()].copy_from_slice(bytes);
    w
}

impl Kernel {
    /// Plain softmax (or log-softmax) over the last axis: scale 1, no mask.
    pub fn softmax(rows: usize, cols: usize, log: bool) -> Self {
        Kernel::Softmax(Softmax::Forward { rows, cols, log, scale: 1.0, causal: false })
    }

    /// The backward of [`Kernel::softmax`].
    pub fn softmax_grad(rows: usize, cols: usize, log: bool) -> Self {
        Kernel::Softmax(Softmax::Backward { rows, cols, log, scale: 1.0 })
    }

    /// The WGSL entry point, which is also the kernel's name in errors.
    pub fn name(&self) -> &'static str {
        each_family!(self, f => f.name())
    }

    /// The shader file (in `shaders/`, without `.wgsl`) holding the entry point.
    pub fn family(&self) -> &'static str {
        each_family!(self, f => shader_of(f))
    }

    /// The WGSL text of the family's shader file (without the common prefix, [`COMMON_WGSL`]).
    pub fn source(&self) -> &'static str {
        each_family!(self, f => source_of(f))
    }

    /// The buffers of one launch, in the order a launch passes them.
    pub fn slots(&self) -> Vec<Slot> {
        each_family!(self, f => f.slots())
    }

    /// Rejects sizes no backend can run: zero-sized work and dimensions past u32.
    pub fn validate(&self) -> Result<()> {
        each_family!(self, f => f.validate())?;
        if self.slots().iter().any(|s| s.len > u32::MAX as usize) {
            return Err(Error::shape(self.name(), "a buffer has more than 2^32 - 1 elements"));
        }
        Ok(())
    }

    /// The uniform block the WGSL entry point reads, as 32-bit words: the family's `Params`
    /// struct, zero-padded.
    pub fn params(&self) -> [u32; PARAMS_BYTES / 4] {
        each_family!(self, f => pack(&f.params()))
    }

    /// Workgroups to dispatch on the GPU.
    pub fn workgroups(&self) -> [u32; 3] {
        each_family!(self, f => f.workgroups())
    }

    /// Values of the entry point's WGSL `override` constants, by name (a matmul's operand types);
    /// the GPU backend builds one pipeline per entry point and values.
    pub fn overrides(&self) -> Vec<(&'static str, u32)> {
        each_family!(self, f => f.overrides())
    }

    /// Read-only bindings the shader declares and this variant leaves unused (a matmul's addend
    /// when it has none): bound to a placeholder on the GPU.
    pub fn unused_bindings(&self) -> Vec<u32> {
        each_family!(self, f => f.unused_bindings())
    }

    /// Checks the workgroup counts against the per-dimension limit (matmul's y and z cannot spill).
    pub fn check_workgroups(&self) -> Result<()> {
        let g = self.workgroups();
        if g.iter().any(|&d| d as usize > MAX_DIM) {
            return Err(Error::shape(
                self.name(),
                format!("needs {g:?} workgroups; at most {MAX_DIM} per dimension"),
            ));
        }
        Ok(())
    }

    /// Runs the CPU twin on buffer views already checked against [`Kernel::slots`], after the
    /// family's check of their contents (an error leaves the outputs untouched).
    pub(crate) fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) -> Result<()> {
        each_family!(self, f => f.check_cpu(ins))?;
        each_family!(self, f => f.run_cpu(outs, ins, par));
        Ok(())
    }
}

/// How a kernel uses one of its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only read by the kernel.
    Read,
    /// Written (and possibly read) by the kernel: outputs and in-place state.
    Write,
}

/// One buffer a kernel binds: its WGSL binding number, role, type and the length it needs.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// The WGSL `@binding` number.
    pub binding: u32,
    /// The buffer's role (`"x"`, `"out"`, ...), used in errors.
    pub name: &'static str,
    /// Its element type.
    pub dtype: DType,
    /// Elements it must hold at least.
    pub len: usize,
    /// Whether the kernel writes it.
    pub access: Access,
}

pub(crate) const fn slot(binding: u32, name: &'static str, dtype: DType, len: usize, access: Access) -> Slot {
    Slot { binding, name, dtype, len, access }
}

/// An error unless every dimension is nonzero.
pub(crate) fn nonzero(name: &'static str, dims: &[usize]) -> Result<()> {
    if dims.contains(&0) {
        return Err(Error::shape(name, format!("zero-sized dimension in {dims:?}")));
    }
    Ok(())
}

/// The lengths of a kernel's slots, for families whose dimensions are just those.
pub(crate) fn slot_lens(slots: &[Slot]) -> Vec<usize> {
    slots.iter().map(|s| s.len).collect()
}

/// Workgroups per dispatch dimension (WebGPU's guaranteed limit).
pub(crate) const MAX_DIM: usize = 65_535;

/// Splits `groups` workgroups over x and y (the shaders rebuild the linear index from both, see
/// `shaders/common.wgsl`).
pub(crate) fn spread(groups: usize) -> [u32; 3] {
    let groups = groups.max(1);
    if groups <= MAX_DIM {
        [groups as u32, 1, 1]
    } else {
        [MAX_DIM as u32, groups.div_ceil(MAX_DIM) as u32, 1]
    }
}

/// One invocation per element, 256 per workgroup.
pub(crate) fn per_element(len: usize) -> [u32; 3] {
    spread(len.div_ceil(256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_dispatches_spill_into_y() {
        let g = per_element(256 * 70_000 + 1);
        assert_eq!(g, [65_535, 2, 1]);
        assert!(g[0] as usize * g[1] as usize * 256 > 256 * 70_000);
        assert_eq!(per_element(1), [1, 1, 1]);
    }

    /// The typed parameter blocks give the words the hand-written layouts gave (plans unchanged).
    #[test]
    fn parameter_words_keep_their_layout() {
        let words = |k: Kernel| k.params().to_vec();
        let pad = |w: &[u32]| [w, &vec![0; 16 - w.len()]].concat();
        assert_eq!(
            words(Kernel::Binary(Binary { op: BinaryOp::Add, bc: Broadcast::same(9) })),
            pad(&[9, 0, 0, 0, 1, 1, 1, 9, 0, 0, 0, 1, 0, 0, 0, 1])
        );
        assert_eq!(
            words(Kernel::Unary(Unary::BiasAct { op: UnaryOp::Gelu, rows: 3, cols: 5, alpha: 0.5 })),
            pad(&[15, 0.5f32.to_bits(), 5, 10])
        );
        let mm = Matmul {
            batch: 2,
            m: 3,
            n: 4,
            k: 5,
            trans_a: true,
            trans_b: false,
            a_batched: true,
            b_batched: false,
            tile: MatmulTile::Small,
            a_dtype: DType::F32,
            b_dtype: DType::F32,
            addend: super::Addend::None,
        };
        assert_eq!(words(Kernel::Matmul(mm)), pad(&[2, 3, 4, 5, 1, 0, 15, 0]));
        assert_eq!(
            words(Kernel::Layout(Layout::SlicePad {
                outer: 2,
                src_len: 5,
                out_len: 3,
                inner: 4,
                offset: -2
            })),
            pad(&[2, 5, 3, 4, (-2i32) as u32])
        );
        assert_eq!(
            words(Kernel::Memory(Memory::Fill { len: 7, value: -1.5 })),
            pad(&[7, (-1.5f32).to_bits()])
        );
        assert_eq!(
            words(Kernel::Softmax(Softmax::Backward { rows: 6, cols: 3, log: true, scale: 2.0 })),
            pad(&[6, 3, 2.0f32.to_bits(), 0])
        );
        let win = Window2d::square(2, 3, 5, 4, 3, 1, 1, 1);
        let mut conv = vec![2, 3, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 5, 4, 7.0f32.to_bits()];
        assert_eq!(words(Kernel::Conv(Conv::Im2col { win, pad_value: 7.0 })), pad(&conv));
        conv[14] = 0;
        assert_eq!(words(Kernel::Conv(Conv::Col2im { win })), pad(&conv));
    }

    /// The typed hypers fill the words in the order the kernels used to read by position.
    #[test]
    fn hyper_words_keep_their_order() {
        let adam = AdamHyper {
            lr: 1.0,
            beta1: 2.0,
            beta2: 3.0,
            eps: 4.0,
            weight_decay: 5.0,
            bias_correction1: 6.0,
            bias_correction2: 7.0,
            skip: 8.0,
        };
        assert_eq!(adam.words(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let sgd = SgdHyper {
            lr: 1.0,
            momentum: 2.0,
            weight_decay: 3.0,
            nesterov: 1.0,
            padding: [0.0; 3],
            skip: 8.0,
        };
        assert_eq!(sgd.words(), [1.0, 2.0, 3.0, 1.0, 0.0, 0.0, 0.0, 8.0]);
        let rms =
            RmspropHyper { lr: 1.0, alpha: 2.0, eps: 3.0, weight_decay: 4.0, padding: [0.0; 3], skip: 8.0 };
        assert_eq!(rms.words(), [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0]);
        // the word loss scaling sets on the device is the last of every layout
        assert_eq!(loss_scale::HYPER_SKIP, HYPER_LEN - 1);
    }
}
