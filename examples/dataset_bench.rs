//! Dataset benchmarks (issue 6): cutting and writing the training segments of 1 h of audio,
//! and manifest append throughput, each beside a baseline run in the same process.
//!   cargo run --release --example dataset_bench -- [hours] [appends]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use hotfolderd::config::DatasetConfig;
use hotfolderd::dataset::manifest::{self, Label, Line};
use hotfolderd::dataset::pcm::PcmSpool;
use hotfolderd::dataset::{Dataset, Labelled};
use hotfolderd::journal::Journal;
use hotfolderd::pipeline::transcript::{Segment, Token, Transcript};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hours: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let appends: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let d = dir.path();
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // The job's audio spool, as the decoder tap writes it: 1 s chunks.
    let seconds = (hours * 3600.0) as usize;
    let (spool, pcm) = PcmSpool::create(&d.join("spool")).unwrap();
    let chunk: Vec<f32> = (0..16_000)
        .map(|i| ((i as f32) * 0.01).sin() * 0.3)
        .collect();
    let t = Instant::now();
    for _ in 0..seconds {
        spool.lock().unwrap().push(&chunk);
    }
    spool.lock().unwrap().finish().unwrap();
    let spool_s = t.elapsed().as_secs_f64();

    // A transcript of 2–8 s segments, back to back, 20 tokens each.
    let mut segments = Vec::new();
    let mut at = 0.0;
    let mut i = 0u64;
    while at < seconds as f64 - 8.0 {
        let len = 2.0 + (i * 7919 % 600) as f64 / 100.0;
        segments.push(Segment {
            start: at,
            end: at + len,
            text: format!("segment number {i} says a dozen words or so of ordinary speech"),
            no_speech_prob: 0.05,
            avg_logprob: -0.2,
            compression_ratio: 1.3,
            temperature: 0.0,
            fallback: None,
            language: None,
            channel: None,
            speaker: None,
            tokens: vec![
                Token {
                    id: 0,
                    text: "w".into(),
                    start: at,
                    end: at + len,
                    p: 0.9,
                };
                20
            ],
            words: Vec::new(),
        });
        at += len;
        i += 1;
    }
    let transcript = Transcript {
        language: "en".into(),
        duration: seconds as f64,
        segments,
        dropped_non_speech: 0,
        languages: Vec::new(),
        vad_speech_seconds: None,
        decode_seconds: 0.0,
        asr_seconds: 0.0,
        speakers: Vec::new(),
        turns: Vec::new(),
        diarized: false,
        overlaps: Vec::new(),
    };
    let config: DatasetConfig = toml::from_str(&format!(
        "name = \"bench\"\nsources = [\"x\"]\npath = {:?}\ntrain_after_hours = 1000.0\n[trainer]\ncommand = [\"true\"]\n",
        d.join("dataset")
    ))
    .unwrap();
    let dataset = Dataset::from_config(&config, d);
    let journal = Mutex::new(Journal::open(&d.join("journal.sqlite")).unwrap());

    let t = Instant::now();
    let sha = "ab".repeat(32);
    let input = Labelled {
        source: "bench.wav",
        sha256: &sha,
        transcript: &transcript,
        model_sha256: Some("cd"),
    };
    dataset.add(&journal, &input, &pcm).unwrap();
    let cut_s = t.elapsed().as_secs_f64();
    let contents = manifest::read(&dataset.manifest()).unwrap();
    let wav_bytes: u64 = contents
        .lines
        .iter()
        .map(|l| std::fs::metadata(&l.audio_filepath).unwrap().len())
        .sum();

    // Baseline: the same number of files of the same total size, plain writes.
    let base_dir = d.join("baseline");
    std::fs::create_dir_all(&base_dir).unwrap();
    let per_file = vec![0u8; (wav_bytes / contents.lines.len() as u64) as usize];
    let t = Instant::now();
    for n in 0..contents.lines.len() {
        std::fs::write(base_dir.join(format!("{n}.wav")), &per_file).unwrap();
    }
    let base_s = t.elapsed().as_secs_f64();
    println!(
        "cut + write {hours} h of audio: {} pieces, {:.0} MB, {cut_s:.2} s ({:.0}× realtime); \
         plain writes of the same files {base_s:.2} s; ratio {:.2}; spooling the audio {spool_s:.2} s",
        contents.lines.len(),
        wav_bytes as f64 / 1e6,
        seconds as f64 / cut_s,
        cut_s / base_s
    );

    // Manifest appends: one input's lines per append (each synced), against unsynced
    // appends of the same lines.
    let line = Line {
        audio_filepath: "/var/lib/hotfolderd/datasets/calls/audio/ab/abababab-0000.wav".into(),
        duration: 7.25,
        text: "a typical segment of about a dozen words of ordinary speech here".into(),
        offset: None,
        source: "/srv/inbox/some/call.wav".into(),
        sha256: "ab".repeat(32),
        label: Some(Label::Machine),
        model_sha256: Some("cd".repeat(32)),
        avg_logprob: Some(-0.31),
        no_speech_prob: Some(0.02),
        compression_ratio: Some(1.4),
        source_start: Some(12.5),
        source_end: Some(19.75),
        ..Line::default()
    };
    let m = d.join("bench-manifest.jsonl");
    let t = Instant::now();
    for _ in 0..appends {
        manifest::append_at(&m, manifest::len(&m).unwrap(), std::slice::from_ref(&line)).unwrap();
    }
    let ours = t.elapsed().as_secs_f64();
    let plain = d.join("plain.jsonl");
    let text = serde_json::to_string(&line).unwrap() + "\n";
    let t = Instant::now();
    for _ in 0..appends {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&plain)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
    let base = t.elapsed().as_secs_f64();
    let n = manifest::read(&m).unwrap().lines.len();
    assert_eq!(n, appends);
    println!(
        "manifest appends: {appends} appends of 1 line, each synced: {:.0}/s; unsynced O_APPEND \
         baseline {:.0}/s; ratio {:.1}× slower for durability",
        appends as f64 / ours,
        appends as f64 / base,
        ours / base
    );
    let batch = vec![line; 10];
    let t = Instant::now();
    for _ in 0..appends / 10 {
        manifest::append_at(&m, manifest::len(&m).unwrap(), &batch).unwrap();
    }
    let batched = t.elapsed().as_secs_f64();
    println!(
        "manifest appends of 10 lines (one input with 10 pieces), synced: {:.0} lines/s",
        appends as f64 / batched
    );
}
