//! Skipping non-speech before decoding. Silero VAD (whisper.cpp's, through whisper-rs) finds
//! speech spans in a window; only those are decoded, joined with short silences, and every
//! timestamp is mapped back to the original audio. (whisper.cpp applies VAD only in
//! `whisper_full` on the context's shared state, not in `whisper_full_with_state`, which
//! per-job states need; so it is done here.)

use std::path::Path;

use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

use super::resample::TARGET_RATE;
use super::transcribe::VadOptions;

/// Silence put between joined speech spans, as whisper.cpp does (0.1 s).
const GAP: usize = TARGET_RATE as usize / 10;

pub struct Vad {
    ctx: WhisperVadContext,
    opts: VadOptions,
}

impl Vad {
    pub fn load(path: &Path, opts: &VadOptions, threads: i32) -> Result<Self, String> {
        let p = path
            .to_str()
            .filter(|s| !s.contains('\0'))
            .ok_or_else(|| format!("VAD model path {} is not valid UTF-8", path.display()))?;
        if !path.is_file() {
            return Err(format!("VAD model {} not found", path.display()));
        }
        let mut params = WhisperVadContextParams::new();
        params.set_n_threads(threads.max(1));
        params.set_use_gpu(false);
        let ctx = WhisperVadContext::new(p, params)
            .map_err(|e| format!("cannot load VAD model {}: {e}", path.display()))?;
        Ok(Vad {
            ctx,
            opts: opts.clone(),
        })
    }

    /// Speech spans in `samples`, as sample ranges, merged and sorted.
    pub fn speech(&mut self, samples: &[f32]) -> Result<Vec<(usize, usize)>, String> {
        let mut p = WhisperVadParams::new();
        p.set_threshold(self.opts.threshold);
        p.set_min_speech_duration(self.opts.min_speech_duration_ms);
        p.set_min_silence_duration(self.opts.min_silence_duration_ms);
        p.set_max_speech_duration(self.opts.max_speech_duration_s);
        p.set_speech_pad(self.opts.speech_pad_ms);
        p.set_samples_overlap(self.opts.samples_overlap);
        let segments = self
            .ctx
            .segments_from_samples(p, samples)
            .map_err(|e| format!("voice activity detection failed: {e}"))?;
        let cs = |t: f32| {
            ((f64::from(t) / 100.0 * f64::from(TARGET_RATE))
                .round()
                .max(0.0) as usize)
                .min(samples.len())
        };
        let mut spans: Vec<(usize, usize)> = segments
            .map(|s| (cs(s.start), cs(s.end)))
            .filter(|(a, b)| b > a)
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Ok(merged)
    }
}

/// Joined speech and how its times map back to the window it came from.
pub struct Joined {
    pub samples: Vec<f32>,
    /// (start in joined, start in original, length), in samples.
    pieces: Vec<(usize, usize, usize)>,
}

impl Joined {
    pub fn new(window: &[f32], spans: &[(usize, usize)]) -> Self {
        let mut samples = Vec::new();
        let mut pieces = Vec::with_capacity(spans.len());
        for (i, &(a, b)) in spans.iter().enumerate() {
            if i > 0 {
                samples.resize(samples.len() + GAP, 0.0);
            }
            pieces.push((samples.len(), a, b - a));
            samples.extend_from_slice(&window[a..b]);
        }
        Joined { samples, pieces }
    }

    /// Maps seconds in the joined audio to seconds in the original window. A time in an
    /// inserted gap maps to the end of the speech before it.
    pub fn to_original(&self, t: f64) -> f64 {
        let rate = f64::from(TARGET_RATE);
        let s = (t * rate).max(0.0);
        let mut result = self.pieces.first().map_or(t, |p| p.1 as f64 / rate);
        for &(joined, orig, len) in &self.pieces {
            let (joined, orig, len) = (joined as f64, orig as f64, len as f64);
            if s < joined {
                break;
            }
            result = (orig + (s - joined).min(len)) / rate;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: usize = TARGET_RATE as usize;

    #[test]
    fn joined_times_map_back_to_the_original() {
        let window: Vec<f32> = (0..30 * R).map(|i| i as f32).collect();
        // Speech at 2–4 s and 20–25 s.
        let j = Joined::new(&window, &[(2 * R, 4 * R), (20 * R, 25 * R)]);
        assert_eq!(j.samples.len(), 2 * R + GAP + 5 * R);
        assert_eq!(j.samples[0], (2 * R) as f32);
        assert_eq!(j.samples[2 * R + GAP], (20 * R) as f32);
        assert!((j.to_original(0.0) - 2.0).abs() < 1e-9);
        assert!((j.to_original(1.5) - 3.5).abs() < 1e-9);
        // Inside the inserted gap: end of the first span.
        assert!((j.to_original(2.05) - 4.0).abs() < 1e-9);
        assert!((j.to_original(2.1 + 1.0) - 21.0).abs() < 1e-9);
        // Past the end: clamps to the end of the last span.
        assert!((j.to_original(100.0) - 25.0).abs() < 1e-9);
    }
}
