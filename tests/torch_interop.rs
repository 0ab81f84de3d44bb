//! PyTorch interop against golden files made by `tests/golden/make_torch_golden.py` (torch 2.x):
//! Kiln loads a PyTorch `nn.Sequential` state_dict and computes the same outputs, and the `kiln`
//! command's one full-batch SGD step equals `torch.optim.SGD`'s.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::data::{read_csv, Target, TaskHint};
use kiln::device::BackendChoice;
use kiln::prelude::*;
use kiln::trainer::checkpoint::Checkpoint;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

fn mlp() -> Sequential {
    Sequential::new(&[5]).add(Dense(7, Relu)).add(Dense(3, Softmax))
}

#[test]
fn pytorch_weights_give_pytorch_outputs() {
    let table = read_csv(golden("torch_data.csv"), "label", TaskHint::Classification).unwrap();
    let mut model = mlp();
    model.load_weights(golden("torch_init.safetensors")).unwrap();
    let mut cfg = Compile::new(Optimizer::sgd(0.1), Loss::CrossEntropy, &[]);
    cfg.backend = BackendChoice::Cpu;
    model.compile_with(cfg).unwrap();
    let probs = model.predict_features(&table.features).unwrap();
    let want: Vec<f64> =
        serde_json::from_str(&std::fs::read_to_string(golden("torch_probs.json")).unwrap()).unwrap();
    assert_eq!(probs.len(), want.len());
    for (i, (&got, &w)) in probs.iter().zip(&want).enumerate() {
        assert!((got as f64 - w).abs() <= 1e-6 + 1e-5 * w.abs(), "prob {i}: kiln {got}, torch {w}");
    }
}

#[test]
fn kiln_state_dict_has_pytorch_names_and_layouts() {
    let mut model = mlp();
    let names: Vec<(String, Vec<usize>)> =
        model.weights().unwrap().into_iter().map(|(n, s, _)| (n, s)).collect();
    let want = [("0.weight", vec![7, 5]), ("0.bias", vec![7]), ("2.weight", vec![3, 7]), ("2.bias", vec![3])];
    assert_eq!(names, want.map(|(n, s)| (n.to_string(), s)));
}

#[test]
fn cli_full_batch_sgd_step_matches_pytorch() {
    let dir = std::env::temp_dir().join(format!("kiln-torch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("step.safetensors");
    let status = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["train", "--target", "label", "--hidden", "7", "--epochs", "1", "--batch-size", "11"])
        .args([
            "--no-shuffle",
            "--no-standardize",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--backend",
            "cpu",
            "--quiet",
        ])
        .arg("--data")
        .arg(golden("torch_data.csv"))
        .arg("--init")
        .arg(golden("torch_init.safetensors"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let (got, want) =
        (Checkpoint::read(&out).unwrap(), Checkpoint::read(golden("torch_sgd.safetensors")).unwrap());
    let init = Checkpoint::read(golden("torch_init.safetensors")).unwrap();
    for t in &want.tensors {
        let g = got.get(&t.name).unwrap_or_else(|| panic!("kiln file lacks {}", t.name));
        assert_eq!(g.shape, t.shape, "{}", t.name);
        let before = &init.get(&t.name).unwrap().data;
        for (i, ((&k, &p), &b)) in g.data.iter().zip(&t.data).zip(before).enumerate() {
            assert!((k - p).abs() <= 1e-6 + 1e-5 * p.abs(), "{}[{i}]: kiln {k}, torch {p} (was {b})", t.name);
        }
        // the step really moved the weights (the test could not pass with no update)
        assert!(g.data.iter().zip(before).any(|(k, b)| (k - b).abs() > 1e-4), "{} did not change", t.name);
    }
    let _ = std::fs::remove_dir_all(&dir);
    // the data really is the three-class problem the golden script wrote
    let table = read_csv(golden("torch_data.csv"), "label", TaskHint::Classification).unwrap();
    assert!(matches!(&table.target, Target::Classes { names, .. } if names.len() == 3));
}
