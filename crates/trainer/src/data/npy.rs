//! NPY files (NumPy `np.save`, format versions 1, 2 and 3): little-endian f4/f8 and
//! u1/i1/u2/i2/u4/i4/u8/i8 arrays in C order, read as f32 features or u32 labels.

use std::path::Path;

use super::array::Array;
use super::elem::{self, Elem};
use crate::{Error, Result};

/// Any supported element type, converted to f32 (NaN and infinities are errors).
pub fn read_npy_f32(path: impl AsRef<Path>) -> Result<Array<f32>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (shape, e, data) = parse(path, &bytes)?;
    Ok(Array { data: elem::to_f32(path, data, e, false)?, shape })
}

/// An integer array converted to u32 labels (negative or too large values are errors).
pub fn read_npy_u32(path: impl AsRef<Path>) -> Result<Array<u32>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (shape, e, data) = parse(path, &bytes)?;
    Ok(Array { data: elem::to_u32(path, data, e, false)?, shape })
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Shape, element type and the data bytes (exactly `count(shape) * size` of them).
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<(Vec<usize>, Elem, &'a [u8])> {
    let bad = |m: String| Error::format(path, format!("not a valid NPY file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(format!("missing the \\x93NUMPY magic ({} bytes)", bytes.len())));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        2 | 3 => return Err(bad("truncated header".into())),
        v => return Err(bad(format!("unsupported format version {v}"))),
    };
    let end = start.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or_else(|| {
        bad(format!("truncated header (needs {header_len} bytes, file has {})", bytes.len() - start))
    })?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text".into()))?;

    let descr = value_after(header, "descr")
        .and_then(|v| {
            let q = v.chars().next().filter(|&c| c == '\'' || c == '"')?;
            v[1..].split(q).next()
        })
        .ok_or_else(|| bad(format!("no 'descr' in header {header:?}")))?;
    let e = dtype(descr).ok_or_else(|| {
        Error::format(
            path,
            format!(
                "unsupported NPY dtype '{descr}' (supported: little-endian f4 f8 u1 i1 u2 i2 u4 i4 u8 i8)"
            ),
        )
    })?;
    match value_after(header, "fortran_order") {
        Some(v) if v.starts_with("False") => {}
        Some(v) if v.starts_with("True") => {
            return Err(Error::format(
                path,
                "Fortran-order NPY arrays are not supported; save with np.ascontiguousarray",
            ))
        }
        _ => return Err(bad(format!("no 'fortran_order' in header {header:?}"))),
    }
    let shape = value_after(header, "shape")
        .filter(|v| v.starts_with('('))
        .and_then(|v| v[1..].split(')').next())
        .ok_or_else(|| bad(format!("no 'shape' in header {header:?}")))?;
    let shape = shape
        .split(',')
        .map(|d| d.trim().trim_end_matches('L'))
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>())
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| bad(format!("bad shape ({shape})")))?;

    let data = &bytes[end..];
    let need = elem::count(path, &shape)?
        .checked_mul(e.size())
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    if data.len() != need {
        let what = if data.len() < need { "truncated" } else { "corrupt (trailing bytes)" };
        return Err(Error::format(
            path,
            format!(
                "{what}: shape {shape:?} of {descr} needs {need} data bytes, the file has {}",
                data.len()
            ),
        ));
    }
    Ok((shape, e, data))
}

/// The text after `'key':` (or `"key":`), leading spaces removed.
fn value_after<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let colon = rest.find(':')?;
    Some(rest[colon + 1..].trim_start())
}

fn dtype(descr: &str) -> Option<Elem> {
    let (order, kind) = descr.split_at_checked(1)?;
    let e = match kind {
        "f4" => Elem::F32,
        "f8" => Elem::F64,
        "u1" => Elem::U8,
        "i1" => Elem::I8,
        "u2" => Elem::U16,
        "i2" => Elem::I16,
        "u4" => Elem::U32,
        "i4" => Elem::I32,
        "u8" => Elem::U64,
        "i8" => Elem::I64,
        _ => return None,
    };
    // '<' little-endian, '|' not applicable (1 byte), '=' native (little-endian on every target we build).
    let ok = order == "<" || order == "=" && cfg!(target_endian = "little") || order == "|" && e.size() == 1;
    ok.then_some(e)
}
