//! The ggml writer: a tensor written with any name, shape and data reads back exactly as
//! whisper.cpp's loader would parse it (n_dims, name length, type, dims, name, data).
#![no_main]
use hotfolderd::model::ggml::{write_tensor, TensorType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let n_dims = usize::from(data[0] % 4) + 1;
    let name_len = usize::from(data[1] % 64);
    let rest = &data[2..];
    if rest.len() < name_len {
        return;
    }
    let (name, payload) = rest.split_at(name_len);
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    // Shape: the payload as f32 values, in the first dimension.
    let n = payload.len() / 4;
    let mut ne = vec![1usize; n_dims];
    ne[0] = n;
    let body = &payload[..n * 4];
    let mut out = Vec::new();
    write_tensor(&mut out, name, &ne, TensorType::F32, body).unwrap();

    let i32_at = |at: usize| i32::from_le_bytes(out[at..at + 4].try_into().unwrap());
    assert_eq!(i32_at(0) as usize, n_dims);
    assert_eq!(i32_at(4) as usize, name.len());
    assert_eq!(i32_at(8), TensorType::F32 as i32);
    for (k, &d) in ne.iter().enumerate() {
        assert_eq!(i32_at(12 + 4 * k) as usize, d);
    }
    let at = 12 + 4 * n_dims;
    assert_eq!(&out[at..at + name.len()], name.as_bytes());
    assert_eq!(&out[at + name.len()..], body);
});
