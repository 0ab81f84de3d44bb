//! The MNIST (or Fashion-MNIST, same layout) IDX files in one directory, as two tables.
//!
//! Expects the four files under their usual names, decompressed (`gunzip *.gz`):
//! `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`. Pixels are scaled from 0..255 to 0..1; the columns are named
//! `p0..p{h*w-1}` row by row and the classes `0`..`9`, so a model sees `[1, h, w]` images.

use std::path::Path;

use super::idx::{read_idx_f32, read_idx_u32};
use super::table::{Table, Target};
use crate::{Error, Result};

/// File names of the training and test images and labels.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// `(train, test)` from a directory holding [`MNIST_FILES`]. A missing file is an error that names
/// it (and the `.gz` that may be there instead); images and labels must agree in count, labels
/// must be 0..9.
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<(Table, Table)> {
    let dir = dir.as_ref();
    let part = |images: &str, labels: &str| -> Result<Table> {
        let (ip, lp) = (dir.join(images), dir.join(labels));
        for p in [&ip, &lp] {
            if !p.exists() {
                let hint = if Path::new(&format!("{}.gz", p.display())).exists() {
                    "not found (a .gz is there: decompress it with gunzip)"
                } else {
                    "not found (the MNIST files are not bundled: download them and pass their directory)"
                };
                return Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, hint)));
            }
        }
        let img = read_idx_f32(&ip)?;
        let lab = read_idx_u32(&lp)?;
        if img.shape.len() != 3 {
            return Err(Error::format(
                &ip,
                format!("expected [images, height, width], found {:?}", img.shape),
            ));
        }
        if lab.shape.len() != 1 || lab.shape[0] != img.shape[0] {
            return Err(Error::format(
                &lp,
                format!("{:?} labels for {} images in {}", lab.shape, img.shape[0], ip.display()),
            ));
        }
        if let Some(i) = lab.data.iter().position(|&l| l > 9) {
            return Err(Error::format(&lp, format!("label #{i} is {}, expected 0..9", lab.data[i])));
        }
        let (rows, cols) = (img.shape[0], img.shape[1] * img.shape[2]);
        let features = img.data.iter().map(|&p| p / 255.0).collect();
        let names = (0..cols).map(|i| format!("p{i}")).collect();
        let classes = (0..10).map(|c| c.to_string()).collect();
        Table::new(features, rows, cols, names, Target::Classes { ids: lab.data, names: classes })
    };
    Ok((part(MNIST_FILES[0], MNIST_FILES[1])?, part(MNIST_FILES[2], MNIST_FILES[3])?))
}
