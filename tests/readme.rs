//! The README's Rust snippet is `examples/quickstart.rs`'s, line for line, and it runs: what it
//! shows a new user (read a CSV, split, fit with validation and early stopping, evaluate, predict
//! classes, save, load, predict the same) stays true.

#[path = "../examples/quickstart.rs"]
mod quickstart;

const README: &str = include_str!("../README.md");
const EXAMPLE: &str = include_str!("../examples/quickstart.rs");

/// The lines of the README's first ```rust block after its `use` lines.
fn readme_snippet() -> Vec<String> {
    let start = README.find("```rust\n").expect("a ```rust block in the README") + 8;
    let block = &README[start..start + README[start..].find("```").unwrap()];
    block.lines().filter(|l| !l.starts_with("use ") && !l.trim().is_empty()).map(str::to_string).collect()
}

fn example_snippet() -> Vec<String> {
    let (begin, end) =
        (EXAMPLE.find("// README:begin\n").unwrap() + 16, EXAMPLE.find("    // README:end").unwrap());
    EXAMPLE[begin..end]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(l).to_string())
        .collect()
}

#[test]
fn the_readme_snippet_is_the_quickstart_example() {
    assert_eq!(readme_snippet(), example_snippet(), "README.md and examples/quickstart.rs differ");
    let uses: Vec<&str> =
        README.split("```rust\n").nth(1).unwrap().lines().take_while(|l| l.starts_with("use ")).collect();
    for u in uses {
        assert!(EXAMPLE.contains(u), "the README's `{u}` is not in the example");
    }
}

#[test]
fn the_readme_snippet_runs() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let (accuracy, same) = quickstart::run().unwrap();
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
    assert!(same, "the loaded model predicts other classes");
}
