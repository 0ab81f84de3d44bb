//! A 3-layer MLP's loss and every parameter gradient on the CPU backend vs golden values computed
//! independently in float64 by `tests/golden/mlp_grads.py` (numpy), plus one Adam step.

use std::collections::BTreeMap;

use kiln_device::{open, BackendChoice, HostData};
use kiln_graph::{Graph, Optimizer, Session};

#[test]
fn mlp_gradients_match_numpy() {
    let text = include_str!("golden/mlp_grads.json");
    let j: serde_json::Value = serde_json::from_str(text).unwrap();
    let vec = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    };
    let sizes: Vec<usize> =
        j["sizes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let x_data = vec(&j["x"]);
    let labels: Vec<u32> =
        j["labels"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let lr = j["adam_lr"].as_f64().unwrap() as f32;

    let g = Graph::new();
    let x = g.input("x", &[sizes[0]]);
    let y = g.input_u32("y", &[]);
    let mut h = x;
    let mut params = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let name = |s: &str| format!("{}.{s}", 2 * i);
        let wt = g.param_init(&name("weight"), &[w[1], w[0]], vec(&j["params"][name("weight")]));
        let b = g.param_init(&name("bias"), &[w[1]], vec(&j["params"][name("bias")]));
        params.extend([wt, b]);
        let a = g.linear(h, wt, Some(b));
        h = match i {
            0 => g.relu(a),
            1 => g.tanh(a),
            _ => a,
        };
    }
    let loss = g.softmax_cross_entropy(h, y);
    let grads = g.gradients(loss, &params).unwrap();
    g.optimize(&params, &grads, Optimizer::adam(lr)).unwrap();

    let mut s = Session::new(g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let names = s.param_names();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]);
    let mut fetch = vec![loss];
    fetch.extend(&grads);
    let out = s.train_sync(&[(x, HostData::F32(&x_data)), (y, HostData::U32(&labels))], &fetch).unwrap();

    let check = |what: &str, got: &[f32], want: &[f32], tol: f32| {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= tol * scale, "{what}[{i}]: got {a}, numpy {b}");
        }
    };
    check("loss", &out[0], &[j["loss"].as_f64().unwrap() as f32], 1e-6);
    let mut after = BTreeMap::new();
    for (k, name) in names.iter().enumerate() {
        check(&format!("d loss / d {name}"), &out[k + 1], &vec(&j["grads"][name]), 1e-5);
        after.insert(name.clone(), s.get_param(name).unwrap());
    }
    for (name, got) in after {
        check(&format!("{name} after one Adam step"), &got, &vec(&j["after_adam"][&name]), 1e-5);
    }
    assert_eq!(s.step_count(), 1);
}
