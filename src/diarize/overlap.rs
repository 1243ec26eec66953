//! Where two people talk at once: pyannote's segmentation-3.0 ([`Segmentation`]) run on
//! 10-s chunks of the job's PCM spool every [`STEP_SECONDS`], each frame's "two speakers"
//! verdict averaged over the chunks that see it with a Hamming window (pyannote's
//! aggregation), and kept where the average passes one half. Frames are finished as soon as
//! no later chunk can see them, so what is held stays bounded by a chunk.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;

use super::run::{read_samples, DiarizeError};
use super::segmentation::{Segmentation, CHUNK, FIRST_PAIR, FRAMES, FRAME_SPAN, FRAME_STEP};
use crate::pipeline::cancel::Cancel;

/// Seconds between chunks. pyannote steps 1 s (each instant seen by 10 chunks); 2.5 s sees
/// each by 4 at two fifths of the cost.
pub const STEP_SECONDS: f64 = 2.5;
const RATE: f64 = 16_000.0;

/// The stretches (seconds, in time order) where two people speak at once in `pcm` (16 kHz
/// mono 16-bit).
pub fn overlaps(
    net: &Segmentation,
    pcm: &Path,
    cancel: &Cancel,
) -> Result<Vec<(f64, f64)>, DiarizeError> {
    let mut file = File::open(pcm)?;
    let seconds = file.metadata()?.len() as f64 / 2.0 / RATE;
    let chunk_seconds = CHUNK as f64 / RATE;
    let window: Vec<f32> = (0..FRAMES)
        .map(|i| {
            let a = 2.0 * std::f64::consts::PI * i as f64 / (FRAMES - 1) as f64;
            (0.54 - 0.46 * a.cos()) as f32
        })
        .collect();
    // (weighted votes, weights) of frames `first..`.
    let mut pending: VecDeque<(f32, f32)> = VecDeque::new();
    let mut first = 0usize;
    let mut spans: Vec<(f64, f64)> = Vec::new();
    let mut c = 0usize;
    loop {
        if let Some(why) = cancel.stopped() {
            return Err(DiarizeError::Stopped(why));
        }
        let start = c as f64 * STEP_SECONDS;
        let audio = read_samples(&mut file, start, start + chunk_seconds)?;
        let frames = net.log_probs(&audio);
        let offset = (start / FRAME_STEP).round() as usize;
        for (i, f) in frames.iter().enumerate() {
            let best = (0..f.len())
                .max_by(|&a, &b| f[a].total_cmp(&f[b]))
                .unwrap_or(0);
            let vote = if best >= FIRST_PAIR { 1.0 } else { 0.0 };
            let Some(at) = (offset + i).checked_sub(first) else {
                continue;
            };
            while pending.len() <= at {
                pending.push_back((0.0, 0.0));
            }
            pending[at].0 += vote * window[i];
            pending[at].1 += window[i];
        }
        let last = start + chunk_seconds >= seconds;
        // Frames before the next chunk's first are final.
        let done_before = if last {
            first + pending.len()
        } else {
            (((c + 1) as f64 * STEP_SECONDS) / FRAME_STEP).round() as usize
        };
        while first < done_before {
            let Some((votes, weight)) = pending.pop_front() else {
                break;
            };
            if weight > 0.0 && votes / weight > 0.5 {
                let from =
                    (first as f64 * FRAME_STEP + FRAME_SPAN / 2.0 - FRAME_STEP / 2.0).min(seconds);
                let to = (from + FRAME_STEP).min(seconds);
                match spans.last_mut() {
                    Some(s) if (from - s.1).abs() < FRAME_STEP / 2.0 => s.1 = to,
                    _ if to > from => spans.push((from, to)),
                    _ => {}
                }
            }
            first += 1;
        }
        if last {
            break;
        }
        c += 1;
    }
    Ok(spans)
}

/// The speakers heard around an overlap (`start..end`): those whose turns cover most of it
/// and the second around it (within a second either side), at most two, by coverage.
pub fn speakers_at(turns: &[super::turns::Turn], start: f64, end: f64) -> Vec<usize> {
    let mut cover = super::turns::coverage(turns, start - 1.0, end + 1.0);
    cover.sort_by(|a, b| b.1.total_cmp(&a.1));
    cover.into_iter().take(2).map(|(s, _)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::super::turns::Turn;
    use super::*;

    #[test]
    fn the_two_speakers_around_an_overlap_are_the_ones_covering_most() {
        let t = |start: f64, end: f64, speaker: usize| Turn {
            start,
            end,
            speaker,
        };
        let turns = [
            t(0.0, 5.0, 0),
            t(5.0, 9.0, 1),
            t(9.0, 9.3, 2),
            t(20.0, 25.0, 2),
        ];
        assert_eq!(speakers_at(&turns, 4.6, 5.4), [0, 1]);
        assert_eq!(speakers_at(&turns, 21.0, 22.0), [2]);
    }
}
