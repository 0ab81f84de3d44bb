//! Weight initializers, and the seeded uniform and normal draws they (and dropout) use.

use serde::{Deserialize, Serialize};

use crate::data::SplitMix64;

/// How a weight tensor starts. All are seeded by the model's seed, so runs reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Keras' default for Dense kernels).
    GlorotUniform,
    /// N(0, s), s = sqrt(2 / (fan_in + fan_out)).
    GlorotNormal,
    /// U(-l, l), l = sqrt(6 / fan_in).
    HeUniform,
    /// N(0, s), s = sqrt(2 / fan_in).
    HeNormal,
    /// All zeros (the default for biases).
    Zeros,
    /// Every value this constant.
    Constant(f32),
}

impl Init {
    /// Values for a `[fan_out, fan_in]` weight (or a `[fan_out]` bias with `fan_in` of its layer).
    pub fn sample(&self, len: usize, fan_in: usize, fan_out: usize, rng: &mut SplitMix64) -> Vec<f32> {
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let uniform = |rng: &mut SplitMix64, limit: f64| {
            (0..len).map(|_| ((unit(rng) * 2.0 - 1.0) * limit) as f32).collect::<Vec<f32>>()
        };
        let normal =
            |rng: &mut SplitMix64, std: f64| (0..len).map(|_| (gaussian(rng) * std) as f32).collect();
        match *self {
            Init::GlorotUniform => uniform(rng, (6.0 / (fi + fo)).sqrt()),
            Init::GlorotNormal => normal(rng, (2.0 / (fi + fo)).sqrt()),
            Init::HeUniform => uniform(rng, (6.0 / fi).sqrt()),
            Init::HeNormal => normal(rng, (2.0 / fi).sqrt()),
            Init::Zeros => vec![0.0; len],
            Init::Constant(c) => vec![c; len],
        }
    }
}

/// Uniform in [0, 1) with 53 random bits.
pub(crate) fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Standard normal (Box-Muller).
pub(crate) fn gaussian(rng: &mut SplitMix64) -> f64 {
    let u1 = unit(rng).max(f64::MIN_POSITIVE);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
