//! Ready-made models behind the examples, so that programs and tests build exactly the same
//! networks: a LeNet-style CNN (for the bundled 8x8 digits or MNIST) and a character-level GPT.

mod char_gpt;
mod lenet;

pub use char_gpt::{CharGpt, CharGptConfig, CONFIG as CHAR_GPT_CONFIG, VOCAB as CHAR_GPT_VOCAB};
pub use lenet::{lenet, lenet_digits};
