//! Mixed precision, autocast-style ([`Compile::precision`](crate::Compile::precision)).

use std::fmt;
use std::str::FromStr;

use kiln_device::DType;
use kiln_graph::GradScaler;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The type the model's matmuls read their operands in while training, as PyTorch's
/// `torch.autocast`: with `Bf16` or `F16`, every matmul the model builds (the `Dense` / linear
/// layers, attention projections, the attention score and context matmuls, the language-model
/// head) reads half copies of its operands (the weight cast from its f32 master each step, the
/// activation cast before the matmul) and accumulates in f32, so what the backward keeps for
/// them is the half copies. Master weights, their gradients and the optimizer state stay f32,
/// as do the kernels between matmuls (norms, softmax, losses, elementwise ops, convolutions);
/// what the backward keeps of softmax, SwiGLU, products and activations is a half copy too
/// (`kiln_graph::Graph::saved_in_half`), while norm and loss inputs stay f32. The
/// conversions are integer bit operations, so both half types run on every adapter and on the
/// CPU. With `F16` the loss is scaled dynamically by default ([`LossScaling`]), so small
/// gradients survive f16's range, as PyTorch's `GradScaler` does; `Bf16` has f32's range and
/// needs none.
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

/// Dynamic loss scaling (`Compile::loss_scale`, `--loss-scale`), with PyTorch `GradScaler`
/// semantics, decided on the device (see `kiln_graph::Graph::grad_scaler`): the loss gradient is
/// multiplied by a scale (2^16 at first); a step whose gradients overflow is skipped (no
/// parameter or optimizer state changes, Adam's step count stays) and halves the scale; 2000
/// updates in a row without overflow double it. The learning-rate schedule counts every step,
/// skipped ones too, as PyTorch's schedulers do. The scale and the skipped steps are in the epoch
/// line and the JSON log, and saved in the optimizer file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LossScaling {
    /// Dynamic with PyTorch's defaults for `F16`, none for `F32` and `Bf16` (the default).
    #[default]
    Auto,
    /// No loss scaling, whatever the precision.
    Off,
    /// Dynamic, with these settings, whatever the precision.
    Dynamic(GradScaler),
}

impl LossScaling {
    /// The scaler a model trained at `precision` gets, if any.
    pub fn resolve(self, precision: Precision) -> Option<GradScaler> {
        match self {
            LossScaling::Auto if precision == Precision::F16 => Some(GradScaler::default()),
            LossScaling::Auto | LossScaling::Off => None,
            LossScaling::Dynamic(g) => Some(g),
        }
    }
}

impl fmt::Display for LossScaling {
    /// `auto`, `off`, `dynamic`, or the initial scale of a dynamic scaler with other settings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossScaling::Auto => f.write_str("auto"),
            LossScaling::Off => f.write_str("off"),
            LossScaling::Dynamic(g) if *g == GradScaler::default() => f.write_str("dynamic"),
            LossScaling::Dynamic(g) => write!(f, "{}", g.init_scale),
        }
    }
}

impl FromStr for LossScaling {
    type Err = Error;

    /// `auto`, `off`, `dynamic` (PyTorch's defaults), or a number: dynamic from that initial
    /// scale (`--loss-scale 1024`).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => return Ok(LossScaling::Auto),
            "off" | "none" => return Ok(LossScaling::Off),
            "dynamic" => return Ok(LossScaling::Dynamic(GradScaler::default())),
            _ => {}
        }
        match s.parse::<f32>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(LossScaling::Dynamic(GradScaler::with_init_scale(v))),
            _ => Err(Error::InvalidArgument(format!(
                "loss scale {s:?}: expected auto (dynamic for f16), off, dynamic, or a positive \
                 initial scale such as 65536"
            ))),
        }
    }
}

/// [`LossScaling`] as a checkpoint's training configuration records it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
enum SavedScaling {
    Auto,
    Off,
    Dynamic { init_scale: f32, growth_factor: f32, backoff_factor: f32, growth_interval: u32 },
}

impl Serialize for LossScaling {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            LossScaling::Auto => SavedScaling::Auto,
            LossScaling::Off => SavedScaling::Off,
            LossScaling::Dynamic(g) => SavedScaling::Dynamic {
                init_scale: g.init_scale,
                growth_factor: g.growth_factor,
                backoff_factor: g.backoff_factor,
                growth_interval: g.growth_interval,
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LossScaling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match SavedScaling::deserialize(d)? {
            SavedScaling::Auto => LossScaling::Auto,
            SavedScaling::Off => LossScaling::Off,
            SavedScaling::Dynamic { init_scale, growth_factor, backoff_factor, growth_interval } => {
                LossScaling::Dynamic(GradScaler {
                    init_scale,
                    growth_factor,
                    backoff_factor,
                    growth_interval,
                })
            }
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

    #[test]
    fn loss_scaling_parses_resolves_and_round_trips() {
        assert_eq!("auto".parse::<LossScaling>().unwrap(), LossScaling::Auto);
        assert_eq!("OFF".parse::<LossScaling>().unwrap(), LossScaling::Off);
        let d = "dynamic".parse::<LossScaling>().unwrap();
        assert_eq!(d, LossScaling::Dynamic(GradScaler::default()));
        let big = "1e30".parse::<LossScaling>().unwrap();
        assert_eq!(big, LossScaling::Dynamic(GradScaler::with_init_scale(1e30)));
        for bad in ["0", "-4", "inf", "nan", "fast"] {
            let err = bad.parse::<LossScaling>().unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("dynamic"), "{err}");
        }
        assert_eq!(LossScaling::Auto.resolve(Precision::F16), Some(GradScaler::default()));
        assert_eq!(LossScaling::Auto.resolve(Precision::Bf16), None);
        assert_eq!(LossScaling::Off.resolve(Precision::F16), None);
        assert_eq!(big.resolve(Precision::F32), Some(GradScaler::with_init_scale(1e30)));
        for s in [LossScaling::Auto, LossScaling::Off, d, big] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<LossScaling>(&json).unwrap(), s, "{json}");
            assert_eq!(s.to_string().parse::<LossScaling>().unwrap(), s);
        }
    }
}
