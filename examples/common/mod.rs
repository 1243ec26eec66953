//! What the benchmarks share: a stub transcriber and small distinct WAV files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hotfolderd::journal::{Journal, State};
use hotfolderd::pipeline::transcribe::{AudioSource, DecodeOptions, TranscribeError, Transcriber};
use hotfolderd::pipeline::transcript::{Segment, Transcript};

/// Reads the whole input (so decoding is measured) and says the same thing every time.
pub struct Stub;

impl Transcriber for Stub {
    fn transcribe(
        &self,
        audio: &mut dyn AudioSource,
        _opts: &DecodeOptions,
    ) -> Result<Transcript, TranscribeError> {
        let mut buf = Vec::new();
        let mut n = 0;
        loop {
            buf.clear();
            let got = audio
                .read(&mut buf, 16_000)
                .map_err(TranscribeError::Decode)?;
            if got == 0 {
                break;
            }
            n += got;
        }
        Ok(Transcript {
            language: "en".into(),
            duration: n as f64 / 16_000.0,
            segments: vec![Segment {
                start: 0.0,
                end: n as f64 / 16_000.0,
                text: "stub".into(),
                no_speech_prob: 0.0,
                avg_logprob: 0.0,
                compression_ratio: 0.0,
                temperature: 0.0,
                fallback: None,
                language: None,
                channel: None,
                speaker: None,
                tokens: Vec::new(),
                words: Vec::new(),
            }],
            dropped_non_speech: 0,
            languages: Vec::new(),
            vad_speech_seconds: None,
            decode_seconds: 0.0,
            asr_seconds: 0.0,
            speakers: Vec::new(),
            turns: Vec::new(),
            diarized: false,
            overlaps: Vec::new(),
        })
    }

    fn model_name(&self) -> String {
        "stub".into()
    }
}

/// 0.1 s of 16 kHz mono silence as WAV, with `tag` in the samples so every file differs
/// (identical content would be deduplicated instead of processed).
pub fn wav(tag: u32) -> Vec<u8> {
    let samples: Vec<i16> = (0..1600u32)
        .map(|i| {
            if i < 32 {
                ((tag >> (i % 32)) & 1) as i16
            } else {
                0
            }
        })
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut h = Vec::with_capacity(44 + data_len as usize);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&16_000u32.to_le_bytes());
    h.extend_from_slice(&32_000u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        h.extend_from_slice(&s.to_le_bytes());
    }
    h
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// For each `(key, unix ms)` given, the ms until its job started (its `running` event in the
/// journal), sorted.
pub fn latencies(j: &Journal, since: &[(String, f64)]) -> Vec<f64> {
    let mut started = HashMap::new();
    for id in j.in_state(State::Done).unwrap() {
        let input = j.get(id).unwrap().unwrap();
        let at = j
            .history(id)
            .unwrap()
            .into_iter()
            .find(|e| e.1 == "running")
            .unwrap()
            .0;
        started.insert(input.key, at as f64);
    }
    let mut lat: Vec<f64> = since.iter().map(|(k, t)| started[k] - t).collect();
    lat.sort_by(f64::total_cmp);
    lat
}

/// The `p` quantile (0–1) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
