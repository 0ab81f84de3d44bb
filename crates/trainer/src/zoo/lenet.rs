//! LeNet-style convolutional network for 1-channel 8x8 images (the bundled digits).

use crate::layers::Activation::{Relu, Softmax};
use crate::layers::{Conv2d, Dense, Flatten, Layer, MaxPool2d};
use crate::model::Sequential;

/// [`lenet`] for the bundled 8x8 digits (`[1, 8, 8]` inputs, 10 classes; about 30K parameters).
pub fn lenet_digits(seed: u64) -> Sequential {
    lenet(&[1, 8, 8], 64, seed)
}

/// conv(16, 3x3, pad 1) - relu - maxpool 2 - conv(32, 3x3, pad 1) - relu - maxpool 2 - dense
/// `hidden` relu - dense 10 softmax, over `[channels, height, width]` images (height and width
/// divisible by 4, e.g. 8x8 digits or 28x28 MNIST), uncompiled.
pub fn lenet(image: &[usize], hidden: usize, seed: u64) -> Sequential {
    Sequential::new(image)
        .add(Conv2d(16, 3).conv(1, 1, 1)) // [16, H, W]
        .add(Layer::Activation(Relu))
        .add(MaxPool2d(2)) // [16, H/2, W/2]
        .add(Conv2d(32, 3).conv(1, 1, 1)) // [32, H/2, W/2]
        .add(Layer::Activation(Relu))
        .add(MaxPool2d(2)) // [32, H/4, W/4]
        .add(Flatten())
        .add(Dense(hidden, Relu))
        .add(Dense(10, Softmax))
        .seed(seed)
}
