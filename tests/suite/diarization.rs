//! Diarization's parts against references outside this project: the speaker model's input
//! features against Kaldi's own fbank (kaldi-native-fbank, from PyPI), on real speech.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use hotfolderd::diarize::fbank::{subtract_mean, Fbank, MEL_BINS};

use crate::common::*;

#[test]
fn the_fbank_matches_kaldis_on_speech() {
    let python = std::env::var("HOTFOLDERD_CLIENT_PYTHON").unwrap_or_else(|_| {
        panic!("HOTFOLDERD_CLIENT_PYTHON must name a python with kaldi-native-fbank (scripts/client-venv.sh)")
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wav = speak(d, "talk", "Who spoke when, and for how long?", "en-gb+m3");
    let raw = d.join("talk.pcm");
    ffmpeg(&wav, &raw, &["-f", "s16le", "-ar", "16000", "-ac", "1"]);
    let bytes = std::fs::read(&raw).unwrap();
    let samples: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect();
    let mut ours = Fbank::new().compute(&samples);
    subtract_mean(&mut ours);

    let script = r#"
import sys, numpy as np, kaldi_native_fbank as knf
o = knf.FbankOptions()
o.frame_opts.dither = 0
o.frame_opts.snip_edges = True
o.frame_opts.window_type = "povey"
o.mel_opts.num_bins = 80
o.mel_opts.low_freq = 20
o.use_energy = False
pcm = np.fromfile(sys.argv[1], dtype="<i2").astype(np.float32) / 32768.0
f = knf.OnlineFbank(o)
f.accept_waveform(16000, pcm.tolist())
f.input_finished()
feats = np.array([f.get_frame(t) for t in range(f.num_frames_ready)], dtype=np.float32)
feats -= feats.mean(axis=0)
feats.astype("<f4").tofile(sys.argv[2])
"#;
    let theirs_path = d.join("kaldi.f32");
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&raw)
        .arg(&theirs_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f32> = std::fs::read(&theirs_path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(ours.len(), theirs.len(), "frames × {MEL_BINS}");
    assert!(ours.len() > 100 * MEL_BINS, "{}", ours.len());
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    // Log energies span about 20: a thousandth is rounding, not a different computation.
    assert!(worst < 2e-3, "largest difference {worst}");
}
