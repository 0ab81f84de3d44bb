//! The loss and metric curves as an SVG file a person reads at a glance: one panel per series
//! (loss, then each metric) with labelled axes and ticks, a legend, and a marker at the best epoch.
//! Plain SVG text, no plotting dependency.

use std::fmt::Write as _;
use std::path::Path;

use super::EpochRecord;
use crate::{Error, Result};

/// One panel's size and its margins (left for the y tick labels, bottom for the x ticks).
const W: f64 = 440.0;
const H: f64 = 300.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 44.0;
const TRAIN: &str = "#1f77b4";
const VAL: &str = "#ff7f0e";

/// Writes the curves of `epochs` to `path` atomically (a temporary file, then a rename). Training
/// is blue, validation orange; the best epoch (lowest validation loss, else lowest training loss)
/// is marked in every panel.
pub fn write_svg(path: &Path, epochs: &[EpochRecord]) -> Result<()> {
    let svg = render(epochs);
    let tmp = path.with_extension("svg.tmp");
    std::fs::write(&tmp, svg).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The SVG text of [`write_svg`].
pub fn render(epochs: &[EpochRecord]) -> String {
    let mut keys = vec!["loss".to_string()];
    if let Some(first) = epochs.first() {
        keys.extend(first.metrics.iter().map(|(n, _)| n.clone()));
    }
    let best = best_epoch(epochs);
    let width = W * keys.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" viewBox="0 0 {width} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="{width}" height="{H}" fill="white"/>"#);
    for (i, key) in keys.iter().enumerate() {
        panel(&mut svg, i as f64 * W, key, epochs, best);
    }
    svg.push_str("</svg>\n");
    svg
}

/// The index of the best epoch: lowest validation loss when there is one, else lowest loss.
fn best_epoch(epochs: &[EpochRecord]) -> Option<usize> {
    let key = if epochs.iter().any(|e| e.val_loss.is_some()) { "val_loss" } else { "loss" };
    epochs
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.get(key).filter(|v| v.is_finite()).map(|v| (i, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Round tick positions covering `[lo, hi]` (steps of 1, 2 or 5 times a power of ten).
fn ticks(lo: f64, hi: f64, want: usize) -> Vec<f64> {
    let raw = (hi - lo) / want.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|&s| s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label with as many decimals as the tick step needs.
fn label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{v:.decimals$}")
}

fn panel(svg: &mut String, x0: f64, key: &str, epochs: &[EpochRecord], best: Option<usize>) {
    let train: Vec<Option<f64>> = epochs.iter().map(|e| e.get(key).filter(|v| v.is_finite())).collect();
    let val_key = format!("val_{key}");
    let val: Vec<Option<f64>> = epochs.iter().map(|e| e.get(&val_key).filter(|v| v.is_finite())).collect();
    let all: Vec<f64> = train.iter().chain(&val).flatten().copied().collect();
    let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let (lo, hi) = match (lo.is_finite(), lo < hi) {
        (false, _) => (0.0, 1.0),
        (true, false) => (lo - 0.5, lo + 0.5),
        // 6% headroom on both sides, so a curve at its extreme never sits on the border.
        (true, true) => (lo - 0.06 * (hi - lo), hi + 0.06 * (hi - lo)),
    };
    let (left, right, top, bottom) = (x0 + LEFT, x0 + W - RIGHT, TOP, H - BOTTOM);
    let last_epoch = epochs.len().max(1) as f64;
    // Epochs are 1-based on the axis; a single epoch is centred.
    let px = |i: usize| {
        if epochs.len() <= 1 {
            (left + right) / 2.0
        } else {
            left + (right - left) * i as f64 / (last_epoch - 1.0)
        }
    };
    let py = |v: f64| bottom - (bottom - top) * (v - lo) / (hi - lo);

    let _ = writeln!(
        svg,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13">{key}</text>"#,
        (left + right) / 2.0
    );
    // y axis: grid lines and labels.
    let yt = ticks(lo, hi, 6);
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { (hi - lo).max(1e-12) };
    for &v in &yt {
        let y = py(v);
        let _ =
            writeln!(svg, r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#e5e5e5"/>"##);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 5.0,
            y + 4.0,
            label(v, ystep)
        );
    }
    // x axis: epochs.
    let xt: Vec<f64> = ticks(1.0, last_epoch, 6).into_iter().filter(|t| t.fract() == 0.0).collect();
    for &t in &xt {
        let x = px(t as usize - 1);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#555"/>"##,
            bottom + 4.0
        );
        let _ = writeln!(svg, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{t}</text>"#, bottom + 16.0);
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">epoch</text>"#,
        (left + right) / 2.0,
        H - 8.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#555"/>"##,
        right - left,
        bottom - top
    );

    // Whether the curves at epoch index `i` sit in the lower half of the frame (where the legend
    // at the top does not cover them).
    let low_at = |i: usize| {
        let vs: Vec<f64> = [&train, &val].iter().filter_map(|s| s.get(i).copied().flatten()).collect();
        vs.is_empty() || vs.iter().all(|&v| py(v) > (top + bottom) / 2.0)
    };

    // The curves (a lone point is drawn as a dot), then the best epoch and the legend.
    let mut legend = Vec::new();
    for (series, color, name) in [(&train, TRAIN, "training"), (&val, VAL, "validation")] {
        let points: Vec<(f64, f64)> =
            series.iter().enumerate().filter_map(|(i, v)| v.map(|v| (px(i), py(v)))).collect();
        if points.is_empty() {
            continue;
        }
        legend.push((color, name));
        if points.len() == 1 {
            let (x, y) = points[0];
            let _ = writeln!(svg, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#);
            continue;
        }
        let text: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            text.join(" ")
        );
    }
    // The best epoch: a dashed vertical line, and a ring on the series it was chosen by.
    if let Some(b) = best {
        let x = px(b);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#2ca02c" stroke-dasharray="4 3"/>"##
        );
        let _ = writeln!(
            svg,
            // In the title row, right-aligned: it never covers a curve or the legend.
            r##"<text x="{right}" y="18" fill="#2ca02c" text-anchor="end">best: epoch {}</text>"##,
            b + 1
        );
        let marked = if val.iter().any(|v| v.is_some()) { &val } else { &train };
        if let Some(v) = marked[b] {
            let _ = writeln!(
                svg,
                r##"<circle cx="{x:.1}" cy="{:.1}" r="5" fill="none" stroke="#2ca02c" stroke-width="2"/>"##,
                py(v)
            );
        }
    }

    // The legend goes where the curves are not: the top right corner when they end low, else
    // the bottom right one.
    let h = 15.0 * legend.len() as f64 + 6.0;
    let legend_top = if low_at(epochs.len().saturating_sub(1)) { top + 6.0 } else { bottom - 6.0 - h };
    if !legend.is_empty() {
        let _ = writeln!(
            svg,
            r##"<rect x="{}" y="{}" width="90" height="{h}" fill="white" fill-opacity="0.85" stroke="#ccc"/>"##,
            right - 97.0,
            legend_top - 5.0
        );
    }
    for (k, (color, name)) in legend.iter().enumerate() {
        let (lx, ly) = (right - 92.0, legend_top + 5.0 + 15.0 * k as f64);
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/>"#,
            lx + 18.0
        );
        let _ = writeln!(svg, r#"<text x="{}" y="{}">{name}</text>"#, lx + 23.0, ly + 4.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, loss: f64, val_loss: f64, acc: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            loss,
            metrics: vec![("accuracy".into(), acc)],
            val_loss: Some(val_loss),
            val_metrics: vec![("accuracy".into(), acc - 0.01)],
            lr: 1e-3,
            steps: 10,
            seconds: 0.1,
            steps_per_s: 100.0,
            loss_scale: None,
        }
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(ticks(1.0, 30.0, 6), vec![5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
        assert_eq!(label(0.25, 0.05), "0.25");
        assert_eq!(label(20.0, 5.0), "20");
    }

    #[test]
    fn the_plot_has_a_legend_ticks_and_the_best_epoch() {
        // Validation loss is lowest at epoch 3 (index 2), then rises: that epoch is marked.
        let epochs = vec![
            record(1, 1.0, 1.1, 0.5),
            record(2, 0.6, 0.8, 0.8),
            record(3, 0.4, 0.7, 0.95),
            record(4, 0.3, 0.75, 1.0),
        ];
        assert_eq!(best_epoch(&epochs), Some(2));
        let svg = render(&epochs);
        assert!(svg.contains(">training</text>") && svg.contains(">validation</text>"), "{svg}");
        assert!(svg.contains("best: epoch 3"), "{svg}");
        assert_eq!(svg.matches("best: epoch 3").count(), 2, "one marker per panel (loss, accuracy)");
        assert!(svg.contains(r#"text-anchor="middle">epoch</text>"#));
        // An accuracy of exactly 1.0 is plotted inside the frame, not on its top border.
        let acc_panel = &svg[svg.find(">accuracy</text>").unwrap()..];
        let frame_top = TOP;
        for y in acc_panel.split("points=\"").skip(1).flat_map(|p| {
            p.split('"')
                .next()
                .unwrap()
                .split(' ')
                .map(|xy| xy.split(',').nth(1).unwrap().parse::<f64>().unwrap())
        }) {
            assert!(y > frame_top + 1.0 && y < H - BOTTOM - 1.0, "y {y} touches the frame");
        }
    }

    #[test]
    fn one_epoch_and_no_validation_still_plot() {
        let mut r = record(1, 0.5, 0.0, 0.7);
        r.val_loss = None;
        r.val_metrics.clear();
        let svg = render(&[r]);
        assert!(
            svg.contains("<circle")
                && svg.contains(">training</text>")
                && !svg.contains(">validation</text>")
        );
        assert!(svg.contains("best: epoch 1"));
    }
}
