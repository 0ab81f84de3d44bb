//! IDX files (the MNIST format): magic `0 0 type ndims`, `ndims` big-endian u32 dimensions, then
//! big-endian data in C order. Types: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64.

use std::path::Path;

use super::array::Array;
use super::elem::{self, Elem};
use crate::{Error, Result};

/// Any IDX element type as f32 (e.g. MNIST images, pixels 0..255).
pub fn read_idx_f32(path: impl AsRef<Path>) -> Result<Array<f32>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (shape, e, data) = parse(path, &bytes)?;
    Ok(Array { data: elem::to_f32(path, data, e, true)?, shape })
}

/// An integer IDX file as u32 labels (e.g. MNIST labels).
pub fn read_idx_u32(path: impl AsRef<Path>) -> Result<Array<u32>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (shape, e, data) = parse(path, &bytes)?;
    Ok(Array { data: elem::to_u32(path, data, e, true)?, shape })
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<(Vec<usize>, Elem, &'a [u8])> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(Error::format(path, "gzip-compressed IDX file; decompress it first (gunzip)"));
    }
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::format(
            path,
            format!("not an IDX file: bad magic {:02x?}", &bytes[..bytes.len().min(4)]),
        ));
    }
    let e = match bytes[2] {
        0x08 => Elem::U8,
        0x09 => Elem::I8,
        0x0B => Elem::I16,
        0x0C => Elem::I32,
        0x0D => Elem::F32,
        0x0E => Elem::F64,
        t => return Err(Error::format(path, format!("not an IDX file: unknown element type 0x{t:02x}"))),
    };
    let ndims = bytes[3] as usize;
    let start = 4 + 4 * ndims;
    if bytes.len() < start {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: {ndims} dimensions need {start} bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    let shape: Vec<usize> = bytes[4..start]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let data = &bytes[start..];
    let need = elem::count(path, &shape)?
        .checked_mul(e.size())
        .ok_or_else(|| Error::format(path, format!("shape {shape:?} is too large")))?;
    if data.len() != need {
        let what = if data.len() < need { "truncated" } else { "corrupt (trailing bytes)" };
        return Err(Error::format(
            path,
            format!(
                "{what} IDX file: shape {shape:?} of {} needs {need} data bytes, the file has {}",
                e.name(),
                data.len()
            ),
        ));
    }
    Ok((shape, e, data))
}
