//! Points `KILN_SHADER_DIR` at the WGSL sources that `include_str!` reads.
//!
//! `crates/device/shaders` is a symlink to the workspace's `../../shaders`; `cargo package` follows
//! it and ships the files, so the published crate has a real `shaders/` directory. A checkout
//! without symlink support (Windows without `core.symlinks`, where git writes the link as a small
//! text file holding its target) has a file there instead: then the workspace path is used.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let link = manifest.join("shaders");
    let dir = if link.join("unary.wgsl").is_file() {
        link
    } else {
        let top = manifest.join("..").join("..").join("shaders");
        assert!(
            top.join("unary.wgsl").is_file(),
            "kiln-device: no WGSL sources at {} (a symlink git checked out as a file?) nor at {}",
            link.display(),
            top.display()
        );
        top
    };
    println!("cargo:rustc-env=KILN_SHADER_DIR={}", dir.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=shaders");
}
