//! Checkpoints: safetensors files of named tensors plus a string->string metadata map.
//!
//! Format (<https://github.com/huggingface/safetensors>): 8 bytes little-endian header length `n`,
//! `n` bytes of JSON `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//! "__metadata__": {"key": "value"}}` (padded with spaces to a multiple of 8), then the tensor bytes
//! (little-endian), offsets relative to the end of the header. Written by hand: the format is this
//! small, and doing so lets every error name the file and the tensor.
//!
//! Kiln holds every tensor's values as f32. The file may store F32, F64, F16, BF16, I64 or I32
//! ([`Dtype`]): reading converts to f32 (an error names the tensor when a value does not fit: an
//! integer f32 cannot hold exactly, a float64 past f32's range) and remembers the file's dtype;
//! writing converts back (integers must be whole numbers in range). PyTorch stores BatchNorm's
//! `num_batches_tracked` as int64, and so does Kiln.
//!
//! Tensor names and layouts follow PyTorch `nn.Sequential.state_dict()` (`0.weight` is `[out, in]`,
//! `0.bias` is `[out]`); metadata values that are structured are JSON strings under the `kiln.*` keys.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::{Error, Result};

/// Metadata key: the model architecture (JSON).
pub const ARCHITECTURE: &str = "kiln.architecture";
/// Metadata key: the [`crate::data::Standardizer`] (JSON).
pub const STANDARDIZER: &str = "kiln.standardizer";
/// Metadata key: class names in id order (JSON array of strings).
pub const LABELS: &str = "kiln.labels";
/// Metadata key: optimizer name and hyper-parameters (JSON).
pub const OPTIMIZER: &str = "kiln.optimizer";
/// Metadata key: the optimizer step count (JSON number).
pub const STEP: &str = "kiln.step";

/// A header larger than this is taken as corruption (the reference implementation uses 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// The element type of a tensor in the file (safetensors' names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit float.
    #[default]
    F32,
    /// 64-bit float (converted to f32 when read).
    F64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer (PyTorch's `num_batches_tracked`).
    I64,
    /// 32-bit signed integer.
    I32,
}

impl Dtype {
    /// Every dtype, in the order `from_name` tries them.
    pub const ALL: [Dtype; 6] = [Dtype::F32, Dtype::F64, Dtype::F16, Dtype::BF16, Dtype::I64, Dtype::I32];

    /// The safetensors name (`"F32"`, `"I64"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
        }
    }

    /// The dtype a safetensors name (`"F32"`, `"BF16"`, ...) means; `None` for an unsupported one.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
        }
    }

    /// One little-endian element (`bytes.len() == self.size()`) as f32, or why it does not fit.
    fn decode(self, b: &[u8]) -> std::result::Result<f32, String> {
        let int = |v: i64| {
            let f = v as f32;
            // compare in i128: `f as i64` saturates, which would pass i64::MAX off as exact
            if f as i128 == v as i128 {
                Ok(f)
            } else {
                Err(format!("{v} cannot be held exactly as f32 (integers up to 2^24 can)"))
            }
        };
        match self {
            Dtype::F32 => Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Dtype::F64 => {
                let v = f64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                let f = v as f32;
                if f.is_infinite() && v.is_finite() {
                    Err(format!("{v} is outside f32's range"))
                } else {
                    Ok(f)
                }
            }
            Dtype::F16 => Ok(half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            Dtype::BF16 => Ok(half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            Dtype::I64 => int(i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
            Dtype::I32 => int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
        }
    }

    /// Appends `v` as one little-endian element; integers must be whole and in range (floats
    /// round to the nearest value of the type).
    fn encode(self, v: f32, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        // whole numbers in [-2^bits, 2^bits), both bounds exact in f64
        let whole = |bits: i32| {
            let (x, bound) = (v as f64, 2f64.powi(bits));
            if x.fract() == 0.0 && x >= -bound && x < bound {
                Ok(x)
            } else {
                Err(format!("{v} is not a whole number in the range of {}", self.name()))
            }
        };
        match self {
            Dtype::F32 => out.extend_from_slice(&v.to_le_bytes()),
            Dtype::F64 => out.extend_from_slice(&(v as f64).to_le_bytes()),
            Dtype::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            Dtype::BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            Dtype::I64 => out.extend_from_slice(&(whole(63)? as i64).to_le_bytes()),
            Dtype::I32 => out.extend_from_slice(&(whole(31)? as i32).to_le_bytes()),
        }
        Ok(())
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One named tensor of a safetensors file, its values held as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The state-dict name (`"0.weight"`).
    pub name: String,
    /// Dimensions, outermost first (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Row-major, `shape.iter().product()` values.
    pub data: Vec<f32>,
    /// How the file stores it (F32 unless read from a file that says otherwise or pushed with
    /// [`Checkpoint::push_as`]).
    pub dtype: Dtype,
}

/// The contents of a safetensors file: named tensors and string metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    /// In file order (ascending data offset) when read; written in this order.
    pub tensors: Vec<Tensor>,
    /// The header's `__metadata__` entries (Kiln stores the model's configuration here as JSON).
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// An empty checkpoint (no tensors, no metadata).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an F32 tensor; `data.len()` must equal the product of `shape`.
    pub fn push(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Result<()> {
        self.push_as(name, shape, data, Dtype::F32)
    }

    /// Appends a tensor the file stores as `dtype` (values are checked when written).
    pub fn push_as(&mut self, name: &str, shape: &[usize], data: Vec<f32>, dtype: Dtype) -> Result<()> {
        check_len(name, shape, data.len())?;
        self.tensors.push(Tensor { name: name.to_string(), shape: shape.to_vec(), data, dtype });
        Ok(())
    }

    /// The tensor named `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Stores `value` as a JSON string under `key`.
    pub fn set_json<T: Serialize>(&mut self, key: &str, value: &T) -> Result<()> {
        let s = serde_json::to_string(value)
            .map_err(|e| Error::Metadata { key: key.into(), message: e.to_string() })?;
        self.metadata.insert(key.to_string(), s);
        Ok(())
    }

    /// The JSON value under `key`, `None` if absent, an error naming the key if it does not parse.
    pub fn json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.metadata
            .get(key)
            .map(|s| {
                serde_json::from_str(s)
                    .map_err(|e| Error::Metadata { key: key.into(), message: e.to_string() })
            })
            .transpose()
    }

    /// Writes the file atomically: a temp file in the same directory, fsync, rename over `path`.
    /// On any failure the temp file is removed and an existing `path` is left untouched.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Reads and validates a file (see the module docs for the format): truncation, a bad header,
    /// an unsupported dtype, a value f32 cannot hold or a tensor whose byte length mismatches its
    /// shape are errors naming the file and the tensor.
    ///
    /// Memory stays bounded by what the header declares: the header is checked against the real
    /// file size first, then each tensor is read by its offset into
    /// one reused buffer and decoded, so the raw file is never held whole beside its values.
    pub fn read(path: impl AsRef<Path>) -> Result<Checkpoint> {
        use std::io::{Read, Seek, SeekFrom};
        let path = path.as_ref();
        let (mut f, head, data_len) = open_checked(path)?;
        let start = head.len() as u64;
        Checkpoint::parse(path, &head, data_len, |begin, buf| {
            f.seek(SeekFrom::Start(start + begin)).map_err(|e| Error::io(path, e))?;
            f.read_exact(buf).map_err(|e| Error::io(path, e))
        })
    }

    /// The file contents. A value its tensor's integer dtype cannot hold is an error naming it.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut header = Map::new();
        let mut offset = 0usize;
        for (i, t) in self.tensors.iter().enumerate() {
            check_len(&t.name, &t.shape, t.data.len())?;
            if t.name == "__metadata__" || self.tensors[..i].iter().any(|u| u.name == t.name) {
                return Err(Error::InvalidArgument(format!(
                    "tensor name '{}' is reserved or used twice",
                    t.name
                )));
            }
            let end = offset + t.dtype.size() * t.data.len();
            header.insert(
                t.name.clone(),
                json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [offset, end]}),
            );
            offset = end;
        }
        if !self.metadata.is_empty() {
            header.insert("__metadata__".into(), json!(self.metadata));
        }
        let mut text = Value::Object(header).to_string().into_bytes();
        text.resize(text.len().next_multiple_of(8), b' ');

        let mut bytes = Vec::with_capacity(8 + text.len() + offset);
        bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&text);
        for t in &self.tensors {
            for (i, &v) in t.data.iter().enumerate() {
                t.dtype.encode(v, &mut bytes).map_err(|m| {
                    Error::InvalidArgument(format!("tensor '{}' element {i} as {}: {m}", t.name, t.dtype))
                })?;
            }
        }
        Ok(bytes)
    }

    /// Parses file contents; `path` names the file in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
        let bad = |m: String| Error::format(path, format!("not a valid safetensors file: {m}"));
        if bytes.len() < 8 {
            return Err(bad(format!("truncated: {} bytes, the header length alone takes 8", bytes.len())));
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
        let head =
            if n > MAX_HEADER || bytes.len() as u64 - 8 < n { bytes } else { &bytes[..8 + n as usize] };
        let data = &bytes[head.len()..];
        Checkpoint::parse(path, head, data.len() as u64, |begin, buf| {
            buf.copy_from_slice(&data[begin as usize..begin as usize + buf.len()]);
            Ok(())
        })
    }

    /// Parses a file from its header bytes (the 8-byte length and the JSON) and a reader of its
    /// data section (`read(offset, buf)` fills `buf` from that data offset), which holds
    /// `data_len` bytes. Every tensor's span is checked against `data_len` before it is read.
    fn parse(
        path: &Path,
        bytes: &[u8],
        data_len: u64,
        mut read: impl FnMut(u64, &mut [u8]) -> Result<()>,
    ) -> Result<Checkpoint> {
        let bad = |m: String| Error::format(path, format!("not a valid safetensors file: {m}"));
        let tensor_err = |tensor: &str, message: String| Error::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            message,
        };
        if bytes.len() < 8 {
            return Err(bad(format!("truncated: {} bytes, the header length alone takes 8", bytes.len())));
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
        if n > MAX_HEADER {
            return Err(bad(format!("header length {n} is implausible")));
        }
        let n = n as usize;
        if bytes.len() - 8 < n {
            return Err(bad(format!(
                "truncated: the header needs {n} bytes, the file has {} after the length",
                bytes.len() - 8
            )));
        }
        let header: Map<String, Value> = std::str::from_utf8(&bytes[8..8 + n])
            .map_err(|_| bad("the header is not UTF-8".into()))
            .and_then(|s| serde_json::from_str(s).map_err(|e| bad(format!("header JSON: {e}"))))?;
        let data_len = data_len as usize;
        let mut raw = Vec::new();

        let mut ck = Checkpoint::new();
        let mut spans = Vec::new();
        for (name, info) in &header {
            if name == "__metadata__" {
                let map = info.as_object().ok_or_else(|| bad("__metadata__ is not an object".into()))?;
                for (k, v) in map {
                    let v = v
                        .as_str()
                        .ok_or_else(|| bad(format!("__metadata__ value of '{k}' is not a string")))?;
                    ck.metadata.insert(k.clone(), v.to_string());
                }
                continue;
            }
            let dtype = info.get("dtype").and_then(Value::as_str);
            let shape: Option<Vec<usize>> = info
                .get("shape")
                .and_then(|s| s.as_array()?.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
            let offsets: Option<Vec<usize>> = info
                .get("data_offsets")
                .and_then(|s| s.as_array()?.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
            let (Some(dtype), Some(shape), Some([begin, end])) =
                (dtype, shape, offsets.as_deref().and_then(|o| <[usize; 2]>::try_from(o).ok()))
            else {
                return Err(tensor_err(
                    name,
                    format!("bad header entry {info} (needs dtype, shape, data_offsets [begin, end])"),
                ));
            };
            let Some(dtype) = Dtype::from_name(dtype) else {
                let known: Vec<&str> = Dtype::ALL.iter().map(|d| d.name()).collect();
                return Err(tensor_err(
                    name,
                    format!("dtype {dtype} is not supported (Kiln reads {})", known.join(", ")),
                ));
            };
            let count = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|c| c.checked_mul(dtype.size()))
                .ok_or_else(|| tensor_err(name, format!("shape {shape:?} is too large")))?;
            if end < begin || end - begin != count {
                return Err(tensor_err(
                    name,
                    format!(
                        "data_offsets [{begin}, {end}] hold {} bytes but shape {shape:?} of {dtype} needs {count}",
                        end.wrapping_sub(begin) as isize
                    ),
                ));
            }
            if end > data_len {
                return Err(tensor_err(
                    name,
                    format!(
                        "truncated file: the tensor ends at data byte {end}, the file has {data_len} data bytes"
                    ),
                ));
            }
            raw.resize(end - begin, 0);
            read(begin as u64, &mut raw)?;
            let values = raw
                .chunks_exact(dtype.size())
                .enumerate()
                .map(|(i, c)| {
                    dtype.decode(c).map_err(|m| tensor_err(name, format!("{dtype} element {i}: {m}")))
                })
                .collect::<Result<Vec<f32>>>()?;
            spans.push((begin, end, name.clone()));
            ck.tensors.push(Tensor { name: name.clone(), shape, data: values, dtype });
        }
        // The tensors must tile the data section exactly: no overlap, no gap, nothing after.
        spans.sort();
        let mut at = 0;
        for (begin, end, name) in &spans {
            if *begin != at {
                return Err(tensor_err(
                    name,
                    format!("starts at data byte {begin}, expected {at} (overlap or gap between tensors)"),
                ));
            }
            at = *end;
        }
        if at != data_len {
            return Err(bad(format!(
                "{} bytes after the last tensor (the tensors hold {at} of {data_len} data bytes)",
                data_len - at
            )));
        }
        let order: Vec<&String> = spans.iter().map(|s| &s.2).collect();
        ck.tensors.sort_by_key(|t| order.iter().position(|n| **n == t.name));
        Ok(ck)
    }
}

/// The bytes of a safetensors file, read with bounded memory: only a regular file (a device such
/// as `/dev/zero` never ends), its header length checked against the real file size before the
/// header is read, and the size the header declares (the largest tensor end) checked against the
/// file size before the tensors are read, so a corrupt or sparse file is refused up front.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let (f, mut bytes, data_len) = open_checked(path)?;
    f.take(data_len).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Opens a safetensors file for reading with bounded memory (see [`read_file`]): returns the file
/// positioned after the header, the header bytes (length and JSON) and the data section's size,
/// after checking that the file is regular and that the header and the data it declares fit in
/// the real file size.
fn open_checked(path: &Path) -> Result<(File, Vec<u8>, u64)> {
    use std::io::Read;
    let bad = |m: String| Error::format(path, format!("not a valid safetensors file: {m}"));
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::format(
            path,
            "not a regular file (a device, FIFO or directory); give a model file",
        ));
    }
    let size = meta.len();
    if size < 8 {
        return Err(bad(format!("truncated: {size} bytes, the header length alone takes 8")));
    }
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(bad(format!("header length {n} is implausible")));
    }
    if n > size - 8 {
        return Err(bad(format!(
            "truncated: the header needs {n} bytes, the file has {} after the length",
            size - 8
        )));
    }
    let mut bytes = Vec::with_capacity(8 + n as usize);
    bytes.extend_from_slice(&len);
    (&mut f).take(n).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    // the data size the header declares: the largest end offset (from_bytes checks the rest)
    let declared = std::str::from_utf8(&bytes[8..])
        .ok()
        .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok())
        .map(|h| {
            h.iter()
                .filter(|(k, _)| *k != "__metadata__")
                .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
                .max()
                .unwrap_or(0)
        });
    if let Some(end) = declared {
        if end > size - 8 - n {
            return Err(bad(format!(
                "truncated: the header declares {end} data bytes, the file holds {}",
                size - 8 - n
            )));
        }
    }
    Ok((f, bytes, size - 8 - n))
}

fn check_len(name: &str, shape: &[usize], len: usize) -> Result<()> {
    let want = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if want != Some(len) {
        return Err(Error::shape(
            format!("tensor '{name}'"),
            format!("{shape:?} = {want:?} values"),
            format!("{len} values"),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` via a temp file in the same directory, fsync, then rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a file path", path.display())))?;
    // Renaming over a device, FIFO, socket or symlink would replace it (as root, /dev/null).
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.file_type().is_file() {
            return Err(Error::format(
                path,
                "not a regular file (a device, FIFO, socket, symlink or directory); refusing to replace it",
            ));
        }
    }
    let tmp = dir.join(format!(".{}.tmp.{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        // an overwritten file keeps its mode
        if let Ok(meta) = fs::metadata(path) {
            let _ = f.set_permissions(meta.permissions());
        }
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable (best effort: not every platform can open a directory).
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
