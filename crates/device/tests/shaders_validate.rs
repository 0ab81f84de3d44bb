//! Every family's `.wgsl` file, prefixed with `shaders/common.wgsl` exactly as the GPU backend
//! builds its module, parses and validates with naga; every kernel's entry point exists in the file
//! its `Kernel::family` names; and each file's `Params` struct has the size of the Rust parameter
//! block that mirrors it.

use std::mem::size_of;
use std::path::{Path, PathBuf};

use kiln_device::kernels::{self, binary, cast, conv, glu, layer_norm, layout, loss, matmul, memory, optim};
use kiln_device::kernels::{loss_scale, reduce, rope, running, softmax, unary};

/// The crate's `shaders` link, or the workspace directory it points to where the link is a file
/// (a checkout without symlinks; see build.rs).
fn shader_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let link = manifest.join("shaders");
    if link.join("common.wgsl").is_file() {
        link
    } else {
        manifest.join("../../shaders")
    }
}

/// The family files: every `.wgsl` but the common prefix.
fn family_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shader_dir())
        .expect("shaders/ must exist")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .filter(|p| p.file_stem().is_some_and(|s| s != "common"))
        .collect();
    files.sort();
    files
}

fn parse(path: &Path) -> naga::Module {
    let src = format!("{}\n{}", kernels::COMMON_WGSL, std::fs::read_to_string(path).unwrap());
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{} (after common.wgsl): {}", path.display(), e.emit_to_string(&src)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{} (after common.wgsl): {}", path.display(), e.emit_to_string(&src)));
    module
}

#[test]
fn every_shader_validates_with_the_common_prefix() {
    let files = family_files();
    assert!(files.len() >= 13, "expected the 13 family files in {}, found {files:?}", shader_dir().display());
    for f in &files {
        let module = parse(f);
        assert!(!module.entry_points.is_empty(), "{} has no entry points", f.display());
    }
}

#[test]
fn the_loaded_sources_are_the_files() {
    let common = std::fs::read_to_string(shader_dir().join("common.wgsl")).unwrap();
    assert_eq!(kernels::COMMON_WGSL, common);
    for k in kiln_device::testing::one_of_each() {
        let file = std::fs::read_to_string(shader_dir().join(format!("{}.wgsl", k.family()))).unwrap();
        assert_eq!(k.source(), file, "{}", k.family());
    }
}

#[test]
fn every_kernel_has_its_entry_point() {
    let kernels = kiln_device::testing::one_of_each();
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

#[test]
fn every_params_struct_matches_its_rust_mirror() {
    let rust = [
        ("binary", size_of::<binary::BinaryParams>()),
        ("cast", size_of::<cast::CastParams>()),
        ("conv", size_of::<conv::ConvParams>()),
        ("glu", size_of::<glu::GluParams>()),
        ("layer_norm", size_of::<layer_norm::LayerNormParams>()),
        ("layout", size_of::<layout::LayoutParams>()),
        ("loss", size_of::<loss::LossParams>()),
        ("loss_scale", size_of::<loss_scale::LossScaleParams>()),
        ("matmul", size_of::<matmul::MatmulParams>()),
        ("memory", size_of::<memory::MemoryParams>()),
        ("optim", size_of::<optim::OptimParams>()),
        ("pool", size_of::<conv::ConvParams>()),
        ("reduce", size_of::<reduce::ReduceParams>()),
        ("rope", size_of::<rope::RopeParams>()),
        ("running", size_of::<running::RunningParams>()),
        ("softmax", size_of::<softmax::SoftmaxParams>()),
        ("unary", size_of::<unary::UnaryParams>()),
    ];
    assert_eq!(rust.len(), family_files().len(), "a family without a Params check");
    let hypers = [
        ("SgdHyper", size_of::<optim::SgdHyper>()),
        ("AdamHyper", size_of::<optim::AdamHyper>()),
        ("RmspropHyper", size_of::<optim::RmspropHyper>()),
    ];
    for (family, bytes) in rust {
        let module = parse(&shader_dir().join(format!("{family}.wgsl")));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let size_of_struct = |name: &str| {
            let (h, ty) = module.types.iter().find(|(_, t)| t.name.as_deref() == Some(name)).unwrap();
            let naga::TypeInner::Struct { span, .. } = ty.inner else {
                panic!("{family}: {name} is not a struct")
            };
            assert_eq!(span, layouter[h].size, "{family}: {name}");
            span as usize
        };
        assert_eq!(size_of_struct("Params"), bytes, "{family}.wgsl: Params vs its Rust mirror");
        assert!(bytes <= kernels::PARAMS_BYTES, "{family}: Params exceeds the uniform block");
        if family == "optim" {
            for (name, bytes) in hypers {
                assert_eq!(size_of_struct(name), bytes, "optim.wgsl: {name}");
                assert_eq!(bytes, 4 * kiln_device::HYPER_LEN, "{name}");
            }
        }
    }
}
