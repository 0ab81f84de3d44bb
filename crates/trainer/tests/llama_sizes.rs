//! The SmolLM2-135M configuration builds and plans its training step (without allocating):
//! the published parameter count, and the bytes the step needs by kind.

use kiln_trainer::zoo::{Llama, LlamaConfig};

#[test]
fn smollm2_135m_plans_its_training_step() {
    let c = LlamaConfig::smollm2_135m();
    let m = Llama::plan_memory(&c, 128, 4, &Llama::default_training()).unwrap();
    assert_eq!(m.parameters, 134_515_008);
    assert_eq!(m.parameter_bytes, 4 * 134_515_008);
    assert_eq!(m.optimizer_bytes, 8 * 134_515_008, "AdamW keeps two moments per value");
    // at least the logits [512, 49152] and their gradient, and less than the naive sum
    let logits = 4 * 512 * 49_152;
    assert!(m.activation_bytes > 2 * logits && m.activation_bytes < 4 << 30, "{m:?}");
    eprintln!("smollm2-135m at 4 x 128: {m:?}");
    let tiny = Llama::plan_memory(&LlamaConfig::tiny(), 128, 4, &Llama::default_training()).unwrap();
    assert_eq!(tiny.parameters, 820_352);
    assert!(tiny.total_bytes() < m.total_bytes() / 50);
}
