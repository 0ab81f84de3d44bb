//! Mixed precision, autocast-style ([`Compile::precision`](crate::Compile::precision)).

use std::fmt;
use std::str::FromStr;

use kiln_device::DType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The type the model's matmuls read their operands in while training, as PyTorch's
/// `torch.autocast`: with `Bf16` or `F16`, every matmul the model builds (the `Dense` / linear
/// layers, attention projections, the attention score and context matmuls, the language-model
/// head) reads half copies of its operands (the weight cast from its f32 master each step, the
/// activation cast before the matmul) and accumulates in f32, so what the backward keeps for
/// them is the half copies. Master weights, their gradients and the optimizer state stay f32,
/// as does everything else (norms, softmax, losses, elementwise ops, convolutions). The
/// conversions are integer bit operations, so both half types run on every adapter and on the
/// CPU. No loss scaling yet: f16 gradients below about 6e-8 flush to zero, so `Bf16` (f32's
/// range) is the safer choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32 (the default).
    #[default]
    F32,
    /// Matmul operands in bfloat16 (8 exponent bits, 7 mantissa bits).
    Bf16,
    /// Matmul operands in IEEE binary16 (5 exponent bits, 10 mantissa bits).
    F16,
}

impl Precision {
    /// Every setting.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// The half type matmuls read (`None` for f32).
    pub fn autocast(self) -> Option<DType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(DType::BF16),
            Precision::F16 => Some(DType::F16),
        }
    }

    /// `f32`, `bf16` or `f16`, as the CLI takes it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Precision::ALL.into_iter().find(|p| p.name() == s.to_ascii_lowercase()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "precision {s:?}: expected f32, bf16 or f16 (mixed precision keeps f32 master weights; \
                 there is no f64 or pure-half training)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(p.to_string().to_uppercase().parse::<Precision>().unwrap(), p);
        }
        let err = "f64".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("f64") && err.contains("bf16"), "{err}");
        assert_eq!(Precision::Bf16.autocast(), Some(DType::BF16));
        assert_eq!(Precision::F32.autocast(), None);
    }
}
