//! Ready-made models behind the examples, so that programs and tests build exactly the same
//! networks: a LeNet-style CNN (for the bundled 8x8 digits or MNIST), a character-level GPT and a
//! Llama-style decoder (SmolLM2 and its kin, Hugging Face checkpoints in and out).

mod char_gpt;
mod lenet;
mod llama;

pub use char_gpt::{CharGpt, CharGptConfig, CONFIG as CHAR_GPT_CONFIG, VOCAB as CHAR_GPT_VOCAB};
pub use lenet::{lenet, lenet_digits};
pub use llama::{
    Generator, Llama, LlamaConfig, MemoryPlan, Sampling, Weights, CONFIG as LLAMA_CONFIG,
    PRESETS as LLAMA_PRESETS, SHAPE as LLAMA_SHAPE,
};
