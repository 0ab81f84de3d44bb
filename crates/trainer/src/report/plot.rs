//! The loss and metric curves as an SVG file (no plotting dependency: a few polylines).

use std::fmt::Write as _;
use std::path::Path;

use super::EpochRecord;
use crate::{Error, Result};

const W: f64 = 420.0;
const H: f64 = 260.0;
const PAD: f64 = 40.0;

/// Writes one panel per series pair (loss, then each metric), training in blue and validation in
/// orange, to `path` (atomically: a temporary file, then a rename).
pub fn write_svg(path: &Path, epochs: &[EpochRecord]) -> Result<()> {
    let mut keys = vec!["loss".to_string()];
    if let Some(first) = epochs.first() {
        keys.extend(first.metrics.iter().map(|(n, _)| n.clone()));
    }
    let mut svg = String::new();
    let width = W * keys.len() as f64;
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="{width}" height="{H}" fill="white"/>"#);
    for (i, key) in keys.iter().enumerate() {
        panel(&mut svg, i as f64 * W, key, epochs);
    }
    svg.push_str("</svg>\n");
    let tmp = path.with_extension("svg.tmp");
    std::fs::write(&tmp, svg).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn panel(svg: &mut String, x0: f64, key: &str, epochs: &[EpochRecord]) {
    let train: Vec<f64> = epochs.iter().filter_map(|e| e.get(key)).collect();
    let val: Vec<f64> = epochs.iter().filter_map(|e| e.get(&format!("val_{key}"))).collect();
    let all: Vec<f64> = train.iter().chain(&val).copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let (lo, hi) = if lo < hi { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    let n = epochs.len().max(2) as f64 - 1.0;
    let px = |i: usize| x0 + PAD + (W - 1.5 * PAD) * i as f64 / n;
    let py = |v: f64| PAD / 2.0 + (H - 1.5 * PAD) * (1.0 - (v - lo) / (hi - lo));
    let (left, right, top, bottom) = (x0 + PAD, x0 + W - PAD / 2.0, PAD / 2.0, H - PAD);
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        right - left,
        bottom - top
    );
    let _ = writeln!(svg, r#"<text x="{}" y="14">{key}</text>"#, x0 + W / 2.0 - 20.0);
    let _ = writeln!(svg, r#"<text x="{}" y="{}">{hi:.4}</text>"#, x0 + 2.0, top + 10.0);
    let _ = writeln!(svg, r#"<text x="{}" y="{bottom}">{lo:.4}</text>"#, x0 + 2.0);
    let _ = writeln!(svg, r#"<text x="{}" y="{}">epoch</text>"#, x0 + W / 2.0, H - 12.0);
    for (series, color) in [(&train, "#1f77b4"), (&val, "#ff7f0e")] {
        if series.is_empty() {
            continue;
        }
        let points: Vec<String> = series
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| format!("{:.1},{:.1}", px(i), py(v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
    }
}
