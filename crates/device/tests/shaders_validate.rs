//! Every `.wgsl` file in `shaders/` parses and validates with naga, and every kernel's entry point
//! exists in the file its `Kernel::family` names.

use std::path::{Path, PathBuf};

fn shader_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shaders")
}

fn parse(path: &Path) -> naga::Module {
    let src = std::fs::read_to_string(path).unwrap();
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
    module
}

#[test]
fn every_shader_validates() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shader_dir())
        .expect("shaders/ must exist")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wgsl files found in {}", shader_dir().display());
    for f in &files {
        let module = parse(f);
        assert!(!module.entry_points.is_empty(), "{} has no entry points", f.display());
    }
}

#[test]
fn every_kernel_has_its_entry_point() {
    let kernels = kiln_device::kernel::one_of_each();
    assert!(kernels.len() > 40);
    for k in kernels {
        let path = shader_dir().join(format!("{}.wgsl", k.family()));
        let module = parse(&path);
        assert!(
            module.entry_points.iter().any(|e| e.name == k.name()),
            "{} lacks entry point {}",
            path.display(),
            k.name()
        );
    }
}
