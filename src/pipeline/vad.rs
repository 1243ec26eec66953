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
    pub fn load(path: &Path, opts: &VadOptions) -> Result<Self, String> {
        let p = path
            .to_str()
            .filter(|s| !s.contains('\0'))
            .ok_or_else(|| format!("VAD model path {} is not valid UTF-8", path.display()))?;
        if !path.is_file() {
            return Err(format!("VAD model {} not found", path.display()));
        }
        let mut params = WhisperVadContextParams::new();
        // One thread: each 32 ms frame is its own tiny graph, and a second thread only adds a
        // barrier per frame (with the cores busy, 30 s took over 25 s instead of a fraction).
        params.set_n_threads(1);
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

/// Raw audio examined per window when VAD is on, as a multiple of the window: enough that a
/// window can be filled with speech even from audio that is mostly pauses.
pub const LOOKAHEAD: usize = 4;
/// Audio analysed again at the seam between two VAD runs, so a span crossing it is whole.
const OVERLAP: usize = TARGET_RATE as usize;
/// VAD runs over blocks of this much audio at fixed places in the input (plus the overlap
/// before each), so the spans found do not depend on how much audio is buffered: with
/// buffer-sized pieces, 30 s and 300 s windows gave WER 0.104 and 0.117 on the same file.
const BLOCK: u64 = 30 * TARGET_RATE as u64;

/// Speech spans over the whole input, in absolute samples, found incrementally: each sample
/// goes through VAD once (plus a short overlap at each seam), however windows are cut.
#[derive(Default)]
pub struct SpeechMap {
    spans: Vec<(u64, u64)>,
    /// Analysed up to here.
    done: u64,
    /// The last [`OVERLAP`] samples before `done`: the next block's context, kept here as the
    /// buffer may have moved past them.
    tail: Vec<f32>,
}

impl SpeechMap {
    /// Analyses every whole block of `buf` (which starts at absolute sample `start`) not yet
    /// analysed, and at the end of the input (`eof`) the rest; returns how far (absolute) the
    /// spans are now known. `buf` must not start after that point.
    pub fn update(
        &mut self,
        vad: &mut Vad,
        buf: &[f32],
        start: u64,
        eof: bool,
    ) -> Result<u64, String> {
        let end = start + buf.len() as u64;
        while self.done < end {
            let block_end = if eof {
                end.min(self.done + BLOCK)
            } else {
                (self.done / BLOCK + 1) * BLOCK
            };
            if block_end > end || self.done < start {
                break;
            }
            let new = &buf[(self.done - start) as usize..(block_end - start) as usize];
            let from = self.done - self.tail.len() as u64;
            let mut input = Vec::with_capacity(self.tail.len() + new.len());
            input.extend_from_slice(&self.tail);
            input.extend_from_slice(new);
            let found = vad.speech(&input)?;
            self.spans.retain(|s| s.0 < from);
            for (a, b) in found {
                let (a, b) = (a as u64 + from, b as u64 + from);
                match self.spans.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => self.spans.push((a, b)),
                }
            }
            self.tail = input[input.len().saturating_sub(OVERLAP)..].to_vec();
            self.done = block_end;
        }
        Ok(self.done)
    }

    /// Spans inside `[start, start + len)`, relative to `start`; forgets earlier ones.
    pub fn spans_in(&mut self, start: u64, len: usize) -> Vec<(usize, usize)> {
        self.spans.retain(|s| s.1 > start);
        let end = start + len as u64;
        self.spans
            .iter()
            .filter(|s| s.0 < end)
            .map(|&(a, b)| {
                (
                    (a.max(start) - start) as usize,
                    (b.min(end) - start) as usize,
                )
            })
            .filter(|(a, b)| b > a)
            .collect()
    }
}

/// Joined speech and how its times map back to the window it came from.
pub struct Joined {
    pub samples: Vec<f32>,
    /// (start in joined, start in original, length), in samples.
    pieces: Vec<(usize, usize, usize)>,
}

impl Joined {
    /// Joins whole speech spans while they fit in `max` samples, so the window ends in a
    /// pause rather than mid-word. Returns the joined audio, how far into `raw` it reaches (the
    /// start of the first span left out, or all of `raw`), and whether it ends at a span
    /// boundary. Only a single span longer than `max` is cut.
    pub fn limited(raw: &[f32], spans: &[(usize, usize)], max: usize) -> (Self, usize, bool) {
        let mut samples = Vec::new();
        let mut pieces = Vec::with_capacity(spans.len());
        for (i, &(a, b)) in spans.iter().enumerate() {
            let gap = if i > 0 { GAP } else { 0 };
            if samples.len() + gap + (b - a) > max {
                if pieces.is_empty() {
                    pieces.push((0, a, max));
                    samples.extend_from_slice(&raw[a..a + max]);
                    return (Joined { samples, pieces }, a + max, false);
                }
                return (Joined { samples, pieces }, a, true);
            }
            samples.resize(samples.len() + gap, 0.0);
            pieces.push((samples.len(), a, b - a));
            samples.extend_from_slice(&raw[a..b]);
        }
        (Joined { samples, pieces }, raw.len(), true)
    }

    /// Where the first joined piece starts in the window it came from.
    pub fn first_source_sample(&self) -> Option<usize> {
        self.pieces.first().map(|p| p.1)
    }

    /// Maps an end time in the joined audio to the original window: a time in an inserted
    /// gap belongs to the speech before it.
    pub fn to_original(&self, t: f64) -> f64 {
        self.map(t, false)
    }

    /// Maps a start time: a time in an inserted gap belongs to the speech after it.
    pub fn to_original_start(&self, t: f64) -> f64 {
        self.map(t, true)
    }

    fn map(&self, t: f64, forward: bool) -> f64 {
        let rate = f64::from(TARGET_RATE);
        let s = (t * rate).max(0.0);
        let mut result = self.pieces.first().map_or(t, |p| p.1 as f64 / rate);
        for &(joined, orig, len) in &self.pieces {
            let (joined, orig, len) = (joined as f64, orig as f64, len as f64);
            if s < joined {
                if forward {
                    // In the gap before this piece (or before the first one).
                    result = orig / rate;
                }
                break;
            }
            result = (orig + (s - joined).min(len)) / rate;
            if s <= joined + len {
                break;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: usize = TARGET_RATE as usize;

    #[test]
    fn limited_joins_stop_at_the_window_and_say_where() {
        let raw = vec![0.5f32; 100 * R];
        let spans = [(R, 21 * R), (40 * R, 60 * R), (80 * R, 90 * R)];
        // The second span does not fit whole: stop before it, at a pause.
        let (j, covered, whole) = Joined::limited(&raw, &spans, 30 * R);
        assert_eq!((j.samples.len(), covered, whole), (20 * R, 40 * R, true));
        // Everything fits: the whole raw buffer is covered.
        let (j, covered, whole) = Joined::limited(&raw, &spans, 1000 * R);
        assert_eq!(
            (j.samples.len(), covered, whole),
            (50 * R + 2 * GAP, 100 * R, true)
        );
        // A single span longer than the window is cut.
        let (j, covered, whole) = Joined::limited(&raw, &[(5 * R, 95 * R)], 30 * R);
        assert_eq!((j.samples.len(), covered, whole), (30 * R, 35 * R, false));
    }

    #[test]
    fn the_speech_map_forgets_what_was_consumed() {
        let mut m = SpeechMap {
            spans: vec![(R as u64, 3 * R as u64), (10 * R as u64, 12 * R as u64)],
            done: 20 * R as u64,
            tail: Vec::new(),
        };
        assert_eq!(
            m.spans_in(2 * R as u64, 9 * R),
            vec![(0, R), (8 * R, 9 * R)]
        );
        assert_eq!(m.spans_in(5 * R as u64, 15 * R), vec![(5 * R, 7 * R)]);
        assert_eq!(m.spans.len(), 1);
    }

    #[test]
    fn joined_times_map_back_to_the_original() {
        let window: Vec<f32> = (0..30 * R).map(|i| i as f32).collect();
        // Speech at 2–4 s and 20–25 s.
        let (j, _, _) = Joined::limited(&window, &[(2 * R, 4 * R), (20 * R, 25 * R)], usize::MAX);
        assert_eq!(j.samples.len(), 2 * R + GAP + 5 * R);
        assert_eq!(j.samples[0], (2 * R) as f32);
        assert_eq!(j.samples[2 * R + GAP], (20 * R) as f32);
        assert!((j.to_original(0.0) - 2.0).abs() < 1e-9);
        assert!((j.to_original(1.5) - 3.5).abs() < 1e-9);
        // Inside the inserted gap: an end belongs before it, a start after it.
        assert!((j.to_original(2.05) - 4.0).abs() < 1e-9);
        assert!((j.to_original_start(2.05) - 20.0).abs() < 1e-9);
        assert!((j.to_original_start(1.5) - 3.5).abs() < 1e-9);
        assert!((j.to_original(2.1 + 1.0) - 21.0).abs() < 1e-9);
        // Past the end: clamps to the end of the last span.
        assert!((j.to_original(100.0) - 25.0).abs() < 1e-9);
    }
}
