//! The SiLU activation as a layer: `Dense(n, Silu)` computes `x * sigmoid(x)` after the affine
//! map (checked in f64 from the model's own weights), is named as PyTorch names it, and survives a
//! save / load.

use kiln_trainer::prelude::*;
use kiln_trainer::{Activation, Layer};

#[test]
fn dense_silu_matches_its_definition_and_round_trips() {
    let mut model = Sequential::new(&[3]).add(Dense(5, Silu)).add(Dense(2, Softmax)).seed(7);
    model.compile(Optimizer::adam(1e-3), Loss::CrossEntropy, &[]).unwrap();
    assert!(model.summary().unwrap().contains("SiLU"), "{}", model.summary().unwrap());
    let x: Vec<f32> = (0..4 * 3).map(|i| ((i * 29 % 17) as f32 - 8.0) / 3.0).collect();
    let got = model.predict_features(&x).unwrap();

    let w = model.weights().unwrap();
    let get = |name: &str| w.iter().find(|t| t.0 == name).unwrap_or_else(|| panic!("{name}")).2.clone();
    // PyTorch names: the activation takes an index of its own after the Linear.
    let (w0, b0, w2, b2) = (get("0.weight"), get("0.bias"), get("2.weight"), get("2.bias"));
    for r in 0..4 {
        let xr = &x[r * 3..r * 3 + 3];
        let h: Vec<f64> = (0..5)
            .map(|j| {
                let a = b0[j] as f64 + (0..3).map(|k| w0[j * 3 + k] as f64 * xr[k] as f64).sum::<f64>();
                a / (1.0 + (-a).exp())
            })
            .collect();
        let z: Vec<f64> =
            (0..2).map(|j| b2[j] as f64 + (0..5).map(|k| w2[j * 5 + k] as f64 * h[k]).sum::<f64>()).collect();
        let m = z[0].max(z[1]);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        for j in 0..2 {
            let want = e[j] / (e[0] + e[1]);
            let have = got[r * 2 + j] as f64;
            assert!((have - want).abs() <= 1e-5 * (1.0 + want.abs()), "row {r} out {j}: {have} vs {want}");
        }
    }

    let dir = std::env::temp_dir().join(format!("kiln-silu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("silu.safetensors");
    model.save(&path).unwrap();
    let mut back = Sequential::load(&path).unwrap();
    assert!(matches!(back.layers()[0], Layer::Dense(ref d) if d.activation == Some(Activation::Silu)));
    assert_eq!(back.predict_features(&x).unwrap(), got);
    assert_eq!(Activation::parse("silu"), Some(Activation::Silu));
    let _ = std::fs::remove_dir_all(&dir);
}
