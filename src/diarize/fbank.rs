//! Kaldi's log mel filterbank (`compute-fbank-feats`), the input CAM++ and most speaker
//! embedding models were trained on: 25 ms frames every 10 ms of 16 kHz audio (only whole
//! frames: `snip_edges`), each with its DC offset removed, pre-emphasised (0.97), shaped by
//! the Povey window and zero-padded to 512 points; the power spectrum through 80 triangular
//! filters evenly spaced on Kaldi's mel scale from 20 Hz to 8 kHz; the log of each (floored
//! at f32's epsilon). No dither, so the same audio always gives the same features.
//!
//! The scale of the samples only shifts every log by one constant, which the mean
//! subtraction each window gets ([`subtract_mean`]) takes away.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: usize = 16_000;
pub const MEL_BINS: usize = 80;
/// 25 ms and 10 ms at 16 kHz.
pub const FRAME: usize = 400;
pub const SHIFT: usize = 160;
const PADDED: usize = 512;
const PREEMPHASIS: f32 = 0.97;
const LOW_HZ: f64 = 20.0;

fn mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// Computes features, reusing its FFT plan and buffers.
pub struct Fbank {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// For each mel bin: the first FFT bin it weighs, and the weights from there.
    banks: Vec<(usize, Vec<f32>)>,
}

impl Default for Fbank {
    fn default() -> Self {
        Self::new()
    }
}

impl Fbank {
    pub fn new() -> Fbank {
        let window = (0..FRAME)
            .map(|i| {
                let a = 2.0 * std::f64::consts::PI * i as f64 / (FRAME - 1) as f64;
                (0.5 - 0.5 * a.cos()).powf(0.85) as f32
            })
            .collect();
        Fbank {
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(PADDED),
            window,
            banks: banks(),
        }
    }

    /// How many frames `samples` samples give.
    pub fn frames(samples: usize) -> usize {
        if samples < FRAME {
            0
        } else {
            1 + (samples - FRAME) / SHIFT
        }
    }

    /// The features of `audio` (16 kHz mono): `frames × 80`, row-major.
    pub fn compute(&self, audio: &[f32]) -> Vec<f32> {
        let n = Self::frames(audio.len());
        let mut out = Vec::with_capacity(n * MEL_BINS);
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; PADDED / 2];
        for f in 0..n {
            let samples = &audio[f * SHIFT..f * SHIFT + FRAME];
            let mean = samples.iter().sum::<f32>() / FRAME as f32;
            frame[..FRAME]
                .iter_mut()
                .zip(samples)
                .for_each(|(o, s)| *o = s - mean);
            for i in (1..FRAME).rev() {
                frame[i] -= PREEMPHASIS * frame[i - 1];
            }
            frame[0] -= PREEMPHASIS * frame[0];
            frame[..FRAME]
                .iter_mut()
                .zip(&self.window)
                .for_each(|(o, w)| *o *= w);
            frame[FRAME..].iter_mut().for_each(|o| *o = 0.0);
            // The buffers are the plan's own sizes: this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .is_err()
            {
                out.resize(out.len() + MEL_BINS, 0.0);
                continue;
            }
            power
                .iter_mut()
                .zip(&spectrum)
                .for_each(|(p, c)| *p = c.norm_sqr());
            for (first, weights) in &self.banks {
                let energy: f32 = weights
                    .iter()
                    .zip(&power[*first..])
                    .map(|(w, p)| w * p)
                    .sum();
                out.push(energy.max(f32::EPSILON).ln());
            }
        }
        out
    }
}

/// Kaldi's triangular mel filters over the FFT bins below Nyquist.
fn banks() -> Vec<(usize, Vec<f32>)> {
    let bins = PADDED / 2;
    let bin_hz = SAMPLE_RATE as f64 / PADDED as f64;
    let (low, high) = (mel(LOW_HZ), mel(SAMPLE_RATE as f64 / 2.0));
    let delta = (high - low) / (MEL_BINS + 1) as f64;
    (0..MEL_BINS)
        .map(|m| {
            let left = low + m as f64 * delta;
            let center = left + delta;
            let right = center + delta;
            let weights: Vec<(usize, f32)> = (0..bins)
                .filter_map(|i| {
                    let at = mel(i as f64 * bin_hz);
                    let w = if at > left && at <= center {
                        (at - left) / (center - left)
                    } else if at > center && at < right {
                        (right - at) / (right - center)
                    } else {
                        return None;
                    };
                    Some((i, w as f32))
                })
                .collect();
            let first = weights.first().map_or(0, |w| w.0);
            (first, weights.into_iter().map(|w| w.1).collect())
        })
        .collect()
}

/// Subtracts each mel bin's mean over the `frames × 80` features (one window's).
pub fn subtract_mean(features: &mut [f32]) {
    let frames = features.len() / MEL_BINS;
    if frames == 0 {
        return;
    }
    for b in 0..MEL_BINS {
        let mean = features.iter().skip(b).step_by(MEL_BINS).sum::<f32>() / frames as f32;
        features
            .iter_mut()
            .skip(b)
            .step_by(MEL_BINS)
            .for_each(|v| *v -= mean);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, seconds: f64) -> Vec<f32> {
        (0..(seconds * SAMPLE_RATE as f64) as usize)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * hz * i as f64 / SAMPLE_RATE as f64).sin())
                    as f32
            })
            .collect()
    }

    /// The mel bin whose centre is nearest `hz`.
    fn bin_of(hz: f64) -> usize {
        let (low, high) = (mel(LOW_HZ), mel(8000.0));
        let delta = (high - low) / (MEL_BINS + 1) as f64;
        ((mel(hz) - low) / delta - 1.0).round() as usize
    }

    #[test]
    fn frames_are_whole_25_ms_every_10_ms() {
        assert_eq!(Fbank::frames(399), 0);
        assert_eq!(Fbank::frames(400), 1);
        assert_eq!(Fbank::frames(16_000), 98);
        assert_eq!(Fbank::new().compute(&tone(440.0, 1.0)).len(), 98 * MEL_BINS);
    }

    #[test]
    fn a_tone_lights_the_bin_of_its_pitch_and_the_scale_is_a_shift() {
        let f = Fbank::new();
        for hz in [300.0, 1000.0, 3000.0] {
            let feats = f.compute(&tone(hz, 0.5));
            let frame = &feats[10 * MEL_BINS..11 * MEL_BINS];
            let loudest = (0..MEL_BINS)
                .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
                .unwrap();
            assert!(loudest.abs_diff(bin_of(hz)) <= 1, "{hz} Hz: bin {loudest}");
            // Twice as loud: every log energy up by ln 4, so mean subtraction removes it.
            let louder: Vec<f32> = tone(hz, 0.5).iter().map(|s| s * 2.0).collect();
            let mut a = feats.clone();
            let mut b = f.compute(&louder);
            let shift = b[10 * MEL_BINS + loudest] - a[10 * MEL_BINS + loudest];
            assert!((shift - 4f32.ln()).abs() < 1e-3, "{shift}");
            subtract_mean(&mut a);
            subtract_mean(&mut b);
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-3));
        }
    }

    #[test]
    fn silence_is_floored_not_minus_infinity() {
        let feats = Fbank::new().compute(&[0.0; 800]);
        assert!(feats.iter().all(|v| *v == f32::EPSILON.ln()));
    }
}
