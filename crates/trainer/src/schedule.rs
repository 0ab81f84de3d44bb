//! Learning-rate schedules, evaluated on the host before each step (the device reads the rate
//! from the optimizer's hyper buffer, so no plan is rebuilt).

use serde::{Deserialize, Serialize};

/// How the learning rate changes over the training steps (see [`Schedule::lr`]); default constant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The optimizer's base rate at every step.
    #[default]
    Constant,
    /// Multiplies the rate by `gamma` every `every` steps (`StepLR`).
    Step {
        /// Steps between decays.
        every: u64,
        /// Factor applied at each decay.
        gamma: f32,
    },
    /// Cosine decay from the base rate to `min_lr` over `total` steps, then `min_lr`
    /// (`CosineAnnealingLR`).
    Cosine {
        /// Steps over which the rate decays.
        total: u64,
        /// The rate at and after step `total`.
        min_lr: f32,
    },
    /// Linear warm-up from 0 over `steps`, then `then` (counted from the end of warm-up).
    Warmup {
        /// Warm-up steps.
        steps: u64,
        /// The schedule after warm-up.
        then: Box<Schedule>,
    },
}

impl Schedule {
    /// The rate for step `t` (0-based) given the optimizer's base rate.
    pub fn lr(&self, base: f32, t: u64) -> f32 {
        match self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((t / (*every).max(1)) as i32),
            Schedule::Cosine { total, min_lr } => {
                let frac = (t.min(*total) as f64) / (*total).max(1) as f64;
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
                (*min_lr as f64 + (base - min_lr) as f64 * cos) as f32
            }
            Schedule::Warmup { steps, then } => {
                if t < *steps {
                    base * (t + 1) as f32 / *steps as f32
                } else {
                    then.lr(base, t - steps)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        assert_eq!(Schedule::Constant.lr(0.1, 1000), 0.1);
        let step = Schedule::Step { every: 10, gamma: 0.5 };
        assert_eq!((step.lr(0.8, 9), step.lr(0.8, 10), step.lr(0.8, 25)), (0.8, 0.4, 0.2));
        let cos = Schedule::Cosine { total: 100, min_lr: 0.0 };
        assert!((cos.lr(1.0, 50) - 0.5).abs() < 1e-6);
        assert!(cos.lr(1.0, 100).abs() < 1e-6 && cos.lr(1.0, 500).abs() < 1e-6);
        let warm = Schedule::Warmup { steps: 4, then: Box::new(Schedule::Constant) };
        assert_eq!((warm.lr(1.0, 0), warm.lr(1.0, 3), warm.lr(1.0, 4)), (0.25, 1.0, 1.0));
    }
}
