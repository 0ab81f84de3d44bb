//! `kiln lm`: train, fine-tune, evaluate and sample Llama-style language models.

mod eval;
mod generate;
mod info;
mod memory;
mod source;
mod train;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum LmCommand {
    /// Train (or fine-tune) a Llama-style model on a text or token file, with warmup + cosine
    /// AdamW, validation every N steps, checkpoints and exact resume.
    Train(Box<train::Args>),
    /// Continue a prompt (key/value cache: n new tokens cost n one-token steps).
    Generate(generate::Args),
    /// Mean next-token cross-entropy over consecutive windows of a token file.
    Eval(eval::Args),
    /// Parameter count and planned training memory of a configuration.
    Info(info::Args),
}

pub fn run(command: LmCommand) -> Result<()> {
    match command {
        LmCommand::Train(a) => train::run(*a),
        LmCommand::Generate(a) => generate::run(a),
        LmCommand::Eval(a) => eval::run(a),
        LmCommand::Info(a) => info::run(a),
    }
}

/// `1234567` -> `1.18 MiB`.
pub fn bytes(n: u64) -> String {
    let (v, unit) = match n {
        n if n >= 1 << 30 => (n as f64 / (1u64 << 30) as f64, "GiB"),
        n if n >= 1 << 20 => (n as f64 / (1u64 << 20) as f64, "MiB"),
        n if n >= 1 << 10 => (n as f64 / 1024.0, "KiB"),
        n => (n as f64, "B"),
    };
    format!("{v:.2} {unit}")
}

/// `8GB` -> 8,000,000,000 and `8GiB` -> 8 * 2^30 (units B, KB, MB, GB, TB in powers of 1000,
/// KiB, MiB, GiB, TiB in powers of 1024, any case; a bare number is bytes).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = (t[..split].trim(), t[split..].to_ascii_lowercase());
    let scale: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!("'{text}': unknown unit '{unit}' (B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"))
        }
    };
    let value: f64 = number.parse().map_err(|_| format!("'{text}' is not a size such as 8GB or 512MiB"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("'{text}': a size must be positive"));
    }
    Ok((value * scale as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_bytes("8GB"), Ok(8_000_000_000));
        assert_eq!(parse_bytes("8 GiB"), Ok(8 << 30));
        assert_eq!(parse_bytes("1.5mib"), Ok(3 << 19));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("8 GBs").unwrap_err().contains("unknown unit 'gbs'"));
        assert!(parse_bytes("GB").unwrap_err().contains("not a size"));
        assert!(parse_bytes("-1GB").unwrap_err().contains("positive"));
    }
}
