//! ggml block quantisation of weight matrices (the reference algorithms from ggml-quants.c),
//! so the importer can write the smaller, faster models whisper.cpp loads directly.

use half::f16;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn dequant_q8_0(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks(34)
            .flat_map(|b| {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                b[2..].iter().map(move |q| f32::from(*q as i8) * d)
            })
            .collect()
    }

    fn dequant_q5_1(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks(24)
            .flat_map(|b| {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let qs = &b[8..24];
                let mut out = vec![0f32; 32];
                for j in 0..16 {
                    let lo = u32::from(qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
                    let hi = u32::from(qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
                    out[j] = lo as f32 * d + m;
                    out[j + 16] = hi as f32 * d + m;
                }
                out
            })
            .collect()
    }

    fn ramp() -> Vec<f32> {
        (0..64).map(|i| ((i as f32) * 0.37).sin() * 0.8).collect()
    }

    #[test]
    fn q8_0_round_trips_within_half_a_step() {
        let x = ramp();
        let mut out = Vec::new();
        q8_0(&x, &mut out);
        assert_eq!(out.len(), 2 * 34);
        for (a, b) in x.iter().zip(dequant_q8_0(&out)) {
            assert!((a - b).abs() <= 0.8 / 127.0, "{a} vs {b}");
        }
    }

    #[test]
    fn q5_1_round_trips_within_half_a_step() {
        let x = ramp();
        let mut out = Vec::new();
        q5_1(&x, &mut out);
        assert_eq!(out.len(), 2 * 24);
        for (a, b) in x.iter().zip(dequant_q5_1(&out)) {
            assert!((a - b).abs() <= 1.6 / 31.0 * 0.51 + 1e-3, "{a} vs {b}");
        }
    }
}
