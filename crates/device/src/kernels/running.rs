//! Running statistics updated in place inside a training step (`shaders/running.wgsl`): BatchNorm's
//! running mean and variance, and its batch counter.

use super::{nonzero, per_element, slot, slot_lens, Access::*, Family, Slot};
use crate::error::Result;
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::F32;

/// In place: `running = keep * running + gain * (value * scale)`. A running average (BatchNorm's
/// running statistics: `keep = 1 - momentum`, `gain = momentum`, `scale` 1 for the mean and
/// the unbiased factor `n / (n - 1)` for the variance) or a counter (`keep = gain = scale = 1`
/// over a value of ones).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunningUpdate {
    /// Elements.
    pub len: usize,
    /// Weight of the old value.
    pub keep: f32,
    /// Weight of the new value.
    pub gain: f32,
    /// Factor applied to the new value.
    pub scale: f32,
}

/// `Params` in `shaders/running.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RunningParams {
    /// Elements.
    pub len: u32,
    /// Weight of the old value.
    pub keep: f32,
    /// Weight of the new value.
    pub gain: f32,
    /// Factor applied to the new value.
    pub scale: f32,
}

impl Family for RunningUpdate {
    const SHADER: &'static str = "running";
    const SOURCE: &'static str = shader!("running");
    type Params = RunningParams;

    fn name(&self) -> &'static str {
        "running_update"
    }

    fn slots(&self) -> Vec<Slot> {
        vec![slot(1, "running", F32, self.len, Write), slot(2, "value", F32, self.len, Read)]
    }

    fn validate(&self) -> Result<()> {
        nonzero(self.name(), &slot_lens(&self.slots()))
    }

    fn params(&self) -> RunningParams {
        RunningParams { len: self.len as u32, keep: self.keep, gain: self.gain, scale: self.scale }
    }

    fn workgroups(&self) -> [u32; 3] {
        per_element(self.len)
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], _par: Par) {
        match (outs, ins) {
            ([Out::F(running)], [In::F(value)]) => {
                for (r, &v) in running.iter_mut().zip(value.iter()) {
                    *r = self.keep * *r + self.gain * (v * self.scale);
                }
            }
            _ => mismatch(self.name()),
        }
    }
}
