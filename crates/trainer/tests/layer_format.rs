//! Model files written before the layers moved into one file each still load: the architecture's
//! layer list keeps its JSON form (written by hand below, as the old `Layer` enum serialized it).

mod common;

use kiln_trainer::checkpoint::{Checkpoint, ARCHITECTURE};
use kiln_trainer::prelude::*;
use kiln_trainer::Layer;
use serde_json::Value;

/// Every layer kind and setting that has a field in the file.
const OLD_IMAGE_LAYERS: &str = r#"[
    {"Conv2d":{"filters":4,"kernel":3,"stride":1,"padding":1,"groups":2,"kernel_init":"HeUniform","bias_init":"Zeros"}},
    {"BatchNorm":{"eps":1e-5,"momentum":0.1}},
    {"Activation":{"LeakyRelu":0.2}},
    {"MaxPool2d":{"kernel":2,"stride":2,"padding":0}},
    {"AvgPool2d":{"kernel":2,"stride":1,"padding":0}},
    {"LayerNorm":{"eps":1e-5}},
    "GlobalAvgPool2d",
    {"Dropout":{"rate":0.25}},
    {"Dense":{"units":6,"activation":"Tanh","kernel_init":"GlorotNormal","bias_init":{"Constant":0.5}}},
    "Flatten",
    {"Dense":{"units":3,"activation":null,"kernel_init":"GlorotUniform","bias_init":"Zeros"}}
]"#;

const OLD_TOKEN_LAYERS: &str = r#"[
    {"Embedding":{"vocab":5,"dim":2}},
    "Flatten",
    {"Dense":{"units":2,"activation":"Softmax","kernel_init":"GlorotUniform","bias_init":"Zeros"}}
]"#;

fn image_model() -> Sequential {
    Sequential::new(&[2, 8, 8])
        .add(Conv2d(4, 3).conv(1, 1, 2))
        .add(BatchNorm())
        .add(Layer::Activation(LeakyRelu(0.2)))
        .add(MaxPool2d(2))
        .add(Layer::AvgPool2d(AvgPool2d { kernel: 2, stride: 1, padding: 0 }))
        .add(LayerNorm())
        .add(GlobalAvgPool2d())
        .add(Dropout(0.25))
        .add(Dense(6, Tanh).kernel_init(Init::GlorotNormal).bias_init(Init::Constant(0.5)))
        .add(Flatten())
        .add(Dense(3, None))
        .seed(3)
}

fn token_model() -> Sequential {
    Sequential::new(&[4]).add(Embedding(5, 2)).add(Flatten()).add(Dense(2, Softmax)).seed(4)
}

/// Saves `model`, checks its layer list is `old` as JSON, then rewrites the file's architecture
/// by hand in the old form and loads it back: same layers, same weights.
fn round_trip(name: &str, mut model: Sequential, old: &str) {
    let dir = common::temp_dir(name);
    let path = dir.join("model.safetensors");
    model.save(&path).unwrap();
    let ck = Checkpoint::read(&path).unwrap();
    let arch: Value = serde_json::from_str(&ck.metadata[ARCHITECTURE]).unwrap();
    let old: Value = serde_json::from_str(old).unwrap();
    assert_eq!(arch["layers"], old, "the layer list's JSON changed");

    let mut hand = ck.clone();
    let input: Vec<String> = model.input_shape().iter().map(|d| d.to_string()).collect();
    let text = format!(r#"{{"format":1,"input_shape":[{}],"layers":{old},"seed":77}}"#, input.join(","));
    hand.metadata.insert(ARCHITECTURE.into(), text);
    // files of the old form were written before the architecture digest existed
    hand.metadata.remove(kiln_trainer::validate::ARCHITECTURE_DIGEST);
    let old_path = dir.join("old.safetensors");
    hand.write(&old_path).unwrap();
    let mut loaded = Sequential::load(&old_path).unwrap();
    assert_eq!(loaded.layers(), model.layers());
    assert_eq!(loaded.weights().unwrap(), model.weights().unwrap());
    assert_eq!(loaded.summary().unwrap(), model.summary().unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn image_layers_keep_their_file_format() {
    round_trip("format-image", image_model(), OLD_IMAGE_LAYERS);
}

#[test]
fn token_layers_keep_their_file_format() {
    round_trip("format-token", token_model(), OLD_TOKEN_LAYERS);
}
