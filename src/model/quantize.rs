//! ggml block quantisation of weight matrices (the reference algorithms from ggml-quants.c),
//! so the importer can write the smaller, faster models whisper.cpp loads directly, and the
//! way back to f32 for exporting a quantized model.

use half::f16;

use super::ggml::TensorType;

/// Elements per block for q8_0 and q5_1.
pub const BLOCK: usize = 32;

/// q8_0: per block an f16 scale then 32 signed bytes (34 bytes).
pub fn q8_0(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks(BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        for i in 0..BLOCK {
            let v = block.get(i).copied().unwrap_or(0.0);
            out.push((v * id).round() as i8 as u8);
        }
    }
}

/// q5_1: per block f16 scale, f16 minimum, 32 high bits, 16 bytes of low nibbles (24 bytes).
pub fn q5_1(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks(BLOCK) {
        let x = |i: usize| block.get(i).copied().unwrap_or(0.0);
        let (mut min, mut max) = (f32::MAX, f32::MIN);
        for i in 0..BLOCK {
            min = min.min(x(i));
            max = max.max(x(i));
        }
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
        let mut qh = 0u32;
        let mut qs = [0u8; BLOCK / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let xi0 = ((x(j) - min) * id + 0.5) as u8;
            let xi1 = ((x(BLOCK / 2 + j) - min) * id + 0.5) as u8;
            *q = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= u32::from((xi0 & 0x10) >> 4) << j;
            qh |= u32::from((xi1 & 0x10) >> 4) << (j + BLOCK / 2);
        }
        out.extend_from_slice(&qh.to_le_bytes());
        out.extend_from_slice(&qs);
    }
}

/// Bytes per block of [`BLOCK`] values, for each block-quantized type.
pub fn block_bytes(t: TensorType) -> Option<usize> {
    match t {
        TensorType::F32 | TensorType::F16 => None,
        TensorType::Q4_0 => Some(18),
        TensorType::Q4_1 => Some(20),
        TensorType::Q5_0 => Some(22),
        TensorType::Q5_1 => Some(24),
        TensorType::Q8_0 => Some(34),
    }
}

/// The f32 values of `bytes` stored as `t` (ggml-quants.c's `dequantize_row_*`).
pub fn dequantize(t: TensorType, bytes: &[u8]) -> Result<Vec<f32>, String> {
    let half = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    let unit = match t {
        TensorType::F32 => 4,
        TensorType::F16 => 2,
        _ => block_bytes(t).unwrap_or(1),
    };
    if bytes.len() % unit != 0 {
        return Err(format!(
            "{} bytes is not a whole number of {t:?} blocks",
            bytes.len()
        ));
    }
    let chunks = bytes.chunks_exact(unit);
    let out = match t {
        TensorType::F32 => chunks
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        TensorType::F16 => chunks.map(|b| half(b, 0)).collect(),
        TensorType::Q8_0 => chunks
            .flat_map(|b| {
                let d = half(b, 0);
                b[2..].iter().map(move |q| f32::from(*q as i8) * d)
            })
            .collect(),
        TensorType::Q4_0 | TensorType::Q4_1 | TensorType::Q5_0 | TensorType::Q5_1 => {
            let mut out = Vec::with_capacity(bytes.len() / unit * BLOCK);
            for b in chunks {
                // Layout: d, [m], [qh: u32], 16 bytes of nibbles (low half, high half).
                let d = half(b, 0);
                let with_min = matches!(t, TensorType::Q4_1 | TensorType::Q5_1);
                let m = if with_min { half(b, 2) } else { 0.0 };
                let at = if with_min { 4 } else { 2 };
                let five = matches!(t, TensorType::Q5_0 | TensorType::Q5_1);
                let qh = if five {
                    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
                } else {
                    0
                };
                let qs = &b[if five { at + 4 } else { at }..];
                // Unsigned types add the minimum; signed ones centre on 8 (4-bit) or 16.
                let offset = match t {
                    TensorType::Q4_0 => 8.0,
                    TensorType::Q5_0 => 16.0,
                    _ => 0.0,
                };
                let mut block = [0f32; BLOCK];
                for j in 0..BLOCK / 2 {
                    let hi_bit = |k: usize| if five { ((qh >> k) & 1) << 4 } else { 0 };
                    let lo = u32::from(qs[j] & 0x0F) | hi_bit(j);
                    let hi = u32::from(qs[j] >> 4) | hi_bit(j + BLOCK / 2);
                    block[j] = (lo as f32 - offset) * d + m;
                    block[j + BLOCK / 2] = (hi as f32 - offset) * d + m;
                }
                out.extend_from_slice(&block);
            }
            out
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Vec<f32> {
        (0..64).map(|i| ((i as f32) * 0.37).sin() * 0.8).collect()
    }

    #[test]
    fn q8_0_round_trips_within_half_a_step() {
        let x = ramp();
        let mut out = Vec::new();
        q8_0(&x, &mut out);
        assert_eq!(out.len(), 2 * 34);
        for (a, b) in x.iter().zip(dequantize(TensorType::Q8_0, &out).unwrap()) {
            assert!((a - b).abs() <= 0.8 / 127.0, "{a} vs {b}");
        }
    }

    #[test]
    fn q5_1_round_trips_within_half_a_step() {
        let x = ramp();
        let mut out = Vec::new();
        q5_1(&x, &mut out);
        assert_eq!(out.len(), 2 * 24);
        for (a, b) in x.iter().zip(dequantize(TensorType::Q5_1, &out).unwrap()) {
            assert!((a - b).abs() <= 1.6 / 31.0 * 0.51 + 1e-3, "{a} vs {b}");
        }
    }
}
