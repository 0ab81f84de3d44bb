//! Element types of NPY and IDX files and their conversion to f32 features or u32 labels.

use std::path::Path;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl Elem {
    pub(crate) fn size(self) -> usize {
        match self {
            Elem::U8 | Elem::I8 => 1,
            Elem::U16 | Elem::I16 => 2,
            Elem::U32 | Elem::I32 | Elem::F32 => 4,
            Elem::U64 | Elem::I64 | Elem::F64 => 8,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Elem::U8 => "u8",
            Elem::I8 => "i8",
            Elem::U16 => "u16",
            Elem::I16 => "i16",
            Elem::U32 => "u32",
            Elem::I32 => "i32",
            Elem::U64 => "u64",
            Elem::I64 => "i64",
            Elem::F32 => "f32",
            Elem::F64 => "f64",
        }
    }
}

/// `N` bytes of `c` in little-endian order.
fn le<const N: usize>(c: &[u8], big_endian: bool) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&c[..N]);
    if big_endian {
        a.reverse();
    }
    a
}

/// One element as an integer, or `None` for a float type.
fn int_at(c: &[u8], e: Elem, be: bool) -> Option<i128> {
    Some(match e {
        Elem::U8 => c[0] as i128,
        Elem::I8 => c[0] as i8 as i128,
        Elem::U16 => u16::from_le_bytes(le(c, be)) as i128,
        Elem::I16 => i16::from_le_bytes(le(c, be)) as i128,
        Elem::U32 => u32::from_le_bytes(le(c, be)) as i128,
        Elem::I32 => i32::from_le_bytes(le(c, be)) as i128,
        Elem::U64 => u64::from_le_bytes(le(c, be)) as i128,
        Elem::I64 => i64::from_le_bytes(le(c, be)) as i128,
        Elem::F32 | Elem::F64 => return None,
    })
}

fn f32_at(c: &[u8], e: Elem, be: bool) -> f32 {
    match e {
        Elem::F32 => f32::from_le_bytes(le(c, be)),
        Elem::F64 => f64::from_le_bytes(le(c, be)) as f32,
        _ => int_at(c, e, be).unwrap_or(0) as f32,
    }
}

/// All elements as f32; NaN, infinities and f64 values beyond the f32 range are errors.
pub(crate) fn to_f32(path: &Path, bytes: &[u8], e: Elem, be: bool) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(bytes.len() / e.size());
    for (i, c) in bytes.chunks_exact(e.size()).enumerate() {
        let v = f32_at(c, e, be);
        if !v.is_finite() {
            return Err(Error::format(
                path,
                format!("element #{i} is not finite as f32 ({v}); data must not hold NaN or infinity"),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// All elements as u32 labels: integer types only, each value in 0..=u32::MAX.
pub(crate) fn to_u32(path: &Path, bytes: &[u8], e: Elem, be: bool) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(bytes.len() / e.size());
    for (i, c) in bytes.chunks_exact(e.size()).enumerate() {
        let Some(v) = int_at(c, e, be) else {
            return Err(Error::format(
                path,
                format!("element type {} is not an integer type (labels must be integers)", e.name()),
            ));
        };
        let v = u32::try_from(v).map_err(|_| {
            Error::format(path, format!("element #{i} = {v} is not a valid label (0..=4294967295)"))
        })?;
        out.push(v);
    }
    Ok(out)
}

/// Number of elements of `shape`, or an error on overflow.
pub(crate) fn count(path: &Path, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::format(path, format!("shape {shape:?} is too large")))
}
