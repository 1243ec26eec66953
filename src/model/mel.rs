//! The mel filterbank Whisper was trained with: librosa's `filters.mel(sr=16000, n_fft=400,
//! n_mels=80|128)` with Slaney's mel scale and area normalisation. whisper.cpp reads it from
//! the model file, so the importer computes it (CTranslate2 models do not carry it).

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(f: f64) -> f64 {
    if f >= MIN_LOG_HZ {
        MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / log_step()
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    if m >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (m - MIN_LOG_MEL)).exp()
    } else {
        F_SP * m
    }
}

/// Row-major `n_mels × (n_fft/2 + 1)` weights.
pub fn filterbank(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let sr = f64::from(sample_rate);
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| i as f64 * (sr / 2.0) / (n_bins - 1) as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (left, center, right) = (mel_points[m], mel_points[m + 1], mel_points[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (center - left);
            let upper = (right - f) / (right - center);
            let w = lower.min(upper).max(0.0);
            weights[m * n_bins + k] = (w * norm) as f32;
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_whisper_reference_values() {
        // Spot values from Whisper's own assets/mel_filters.npz ("mel_80"), which is
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80).
        let w = filterbank(16000, 400, 80);
        assert_eq!(w.len(), 80 * 201);
        let at = |m: usize, k: usize| w[m * 201 + k];
        for (m, k, want) in [
            (0, 1, 0.024_862_595f32),
            (1, 1, 0.001_990_822),
            (1, 2, 0.022_871_772),
            (40, 42, 0.005_411_1),
            (40, 43, 0.014_735_57),
        ] {
            assert!(
                (at(m, k) - want).abs() < 1e-6,
                "[{m},{k}] = {} want {want}",
                at(m, k)
            );
        }
        let sum: f32 = w.iter().sum();
        assert!((sum - 1.999_024_2).abs() < 1e-4, "sum {sum}");
        assert!(at(0, 0) == 0.0 && at(0, 3) == 0.0);
        // The last filter ends below Nyquist and every filter has some weight.
        for m in 0..80 {
            assert!(
                w[m * 201..(m + 1) * 201].iter().any(|v| *v > 0.0),
                "filter {m}"
            );
        }
    }
}
