//! Opt-in time per kernel on the CPU backend: with `KILN_PROFILE_KERNELS=1` every launch is
//! timed by its kernel's entry-point name (with its sizes for matmuls), and the table (total
//! time, launches, share) is printed to stderr when the backend is dropped. Off by default: one
//! branch per launch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::kernels::Kernel;

/// Times per kernel, when profiling is on.
#[derive(Default)]
pub(crate) struct KernelProfile {
    times: HashMap<String, (Duration, u64)>,
}

impl KernelProfile {
    /// A profile if `KILN_PROFILE_KERNELS` is set to anything but `0` or empty.
    pub(crate) fn from_env() -> Option<Self> {
        let on = std::env::var("KILN_PROFILE_KERNELS").is_ok_and(|v| !v.is_empty() && v != "0");
        on.then(Self::default)
    }

    /// Runs `f` and charges its time to `kernel`.
    pub(crate) fn time<T>(&mut self, kernel: &Kernel, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        let key = match kernel {
            Kernel::Matmul(m) => format!(
                "{} b{} {}x{}x{}{}{}",
                kernel.name(),
                m.batch,
                m.m,
                m.n,
                m.k,
                if m.trans_a { " tA" } else { "" },
                if m.trans_b { " tB" } else { "" }
            ),
            _ => kernel.name().to_string(),
        };
        let e = self.times.entry(key).or_default();
        e.0 += t0.elapsed();
        e.1 += 1;
        out
    }

    /// The table, slowest first.
    pub(crate) fn report(&self) -> String {
        let total: Duration = self.times.values().map(|t| t.0).sum();
        let mut rows: Vec<_> = self.times.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
        let mut s = format!("# kernel profile: {:.3} s in {} kernels\n", total.as_secs_f64(), rows.len());
        for (name, (t, n)) in rows {
            let share = 100.0 * t.as_secs_f64() / total.as_secs_f64().max(1e-12);
            s.push_str(&format!(
                "# {share:5.1}% {:9.3} ms {n:7} launches {:8.1} us/launch  {name}\n",
                t.as_secs_f64() * 1e3,
                t.as_secs_f64() * 1e6 / *n as f64
            ));
        }
        s
    }
}
