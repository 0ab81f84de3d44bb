//! Kiln's Llama against Hugging Face `transformers`, the reference: a tiny random
//! `LlamaForCausalLM` saved by `transformers` (`tests/golden/llama_reference.py` made it, with
//! its logits, loss and gradients for fixed tokens and a greedy continuation) loads through the
//! real loader and gives the same numbers to float32 tolerance, on the CPU backend and on the
//! GPU (the software Vulkan adapter in CI); a folder Kiln saves loads back identically.

use std::path::PathBuf;

use kiln_device::{Backend, BackendChoice};
use kiln_trainer::checkpoint::Checkpoint;
use kiln_trainer::zoo::{Generator, Llama, Sampling, Weights};

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

struct Reference {
    tokens: Vec<u32>,
    logits: Vec<f32>,
    loss: f32,
    grads: Checkpoint,
    greedy_prompt: Vec<u32>,
    greedy: Vec<u32>,
}

fn reference() -> Reference {
    let grads = Checkpoint::read(golden().join("tiny_llama_golden.safetensors")).unwrap();
    let tokens = grads.get("tokens").unwrap().data.iter().map(|&t| t as u32).collect();
    let logits = grads.get("logits").unwrap().data.clone();
    let loss = grads.get("loss").unwrap().data[0];
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden().join("tiny_llama_golden.json")).unwrap())
            .unwrap();
    let ids = |k: &str| meta[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    Reference {
        tokens,
        logits,
        loss,
        grads,
        greedy_prompt: ids("greedy_prompt"),
        greedy: ids("greedy_continuation"),
    }
}

/// Inputs (the first 8 of each row of 9) and targets (the next 8).
fn split(tokens: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for row in tokens.chunks(9) {
        x.extend_from_slice(&row[..8]);
        y.extend_from_slice(&row[1..]);
    }
    (x, y)
}

fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= abs + rel * w.abs(), "{what}[{i}]: kiln {g}, transformers {w}");
    }
}

fn check_against_reference(backend: Box<dyn Backend>, choice: BackendChoice, tol: f32) {
    let r = reference();
    let mut training = Llama::default_training();
    training.backend = choice;
    let mut m = Llama::from_hf(golden().join("tiny_llama"), 8, training, backend).unwrap();
    assert_eq!(m.parameters(), 38_784);
    let (x, y) = split(&r.tokens);
    assert_close("logits", &m.logits(&x).unwrap(), &r.logits, tol, tol);
    let loss = m.eval_loss(&x, &y).unwrap();
    assert!((loss - r.loss).abs() <= tol * r.loss, "loss: kiln {loss}, transformers {}", r.loss);
    let grads = m.gradients(&x, &y).unwrap();
    assert_eq!(grads.len(), 2 * 9 + 2, "every parameter has its gradient");
    for (name, g) in &grads {
        let want = r.grads.get(&format!("grad.{name}")).unwrap_or_else(|| panic!("no reference for {name}"));
        // gradients are sums over the batch: compare against their own scale
        let scale = want.data.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert_close(name, g, &want.data, tol, tol * scale);
    }
    // the key/value-cached decoder continues the prompt as transformers' greedy search does
    let mut gen = m.generator(r.greedy_prompt.len() + r.greedy.len()).unwrap();
    let got = gen.generate(&r.greedy_prompt, r.greedy.len(), &Sampling::greedy()).unwrap();
    assert_eq!(got, r.greedy, "greedy continuation");
}

#[test]
fn matches_transformers_on_the_cpu() {
    let cpu = kiln_device::open(BackendChoice::Cpu).unwrap();
    check_against_reference(cpu, BackendChoice::Cpu, 2e-5);
}

#[test]
fn matches_transformers_on_the_gpu() {
    let Some(gpu) = kiln_device::testing::gpu_or_skip("the Llama reference test") else { return };
    check_against_reference(gpu, BackendChoice::Gpu, 1e-4);
}

#[test]
fn cached_decoding_equals_the_full_forward_at_every_position() {
    let r = reference();
    let w = Weights::read(golden().join("tiny_llama")).unwrap();
    let cpu = || kiln_device::open(BackendChoice::Cpu).unwrap();
    let mut gen = Generator::new(w.config.clone(), &w.tensors, 16, cpu()).unwrap();
    let (x, _) = split(&r.tokens);
    for row in 0..2 {
        gen.reset().unwrap();
        for t in 0..8 {
            let logits = gen.step(x[row * 8 + t]).unwrap();
            let want = &r.logits[(row * 8 + t) * 67..][..67];
            assert_close(&format!("row {row} position {t}"), &logits, want, 2e-5, 2e-5);
        }
    }
    assert!(gen.step(70).unwrap_err().to_string().contains("outside the vocabulary"));
}

#[test]
fn a_saved_folder_loads_back_identically() {
    let r = reference();
    let cpu = || kiln_device::open(BackendChoice::Cpu).unwrap();
    let mut m = Llama::from_hf(golden().join("tiny_llama"), 8, Llama::default_training(), cpu()).unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-llama-hf-{}", std::process::id()));
    m.save_hf(&dir).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    assert_eq!(config["num_key_value_heads"], 2);
    let saved = Checkpoint::read(dir.join("model.safetensors")).unwrap();
    assert!(saved.get("lm_head.weight").is_none(), "a tied head is not written twice");
    assert!(saved.get("model.layers.1.mlp.gate_proj.weight").is_some());
    let (x, _) = split(&r.tokens);
    let mut back = Llama::from_hf(&dir, 8, Llama::default_training(), cpu()).unwrap();
    assert_eq!(back.logits(&x).unwrap(), m.logits(&x).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clear_errors_for_folders_that_are_not_llama_models() {
    let cpu = || kiln_device::open(BackendChoice::Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-llama-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = Llama::from_hf(&dir, 8, Llama::default_training(), cpu()).err().unwrap().to_string();
    assert!(e.contains("config.json"), "{e}");
    std::fs::copy(golden().join("tiny_llama/config.json"), dir.join("config.json")).unwrap();
    let e = Llama::from_hf(&dir, 8, Llama::default_training(), cpu()).err().unwrap().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
