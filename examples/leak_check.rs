//! Leak check (issue 9): the daemon (in this process, so its RSS and open descriptors are
//! this process's) runs batches of jobs; after each batch the resident set and the number of
//! open file descriptors are sampled. After a warm-up both must stay flat: growth past the
//! limits below exits 1. Two phases: `STUB_JOBS` jobs with a stub transcriber (everything
//! around the model: watcher, journal, decode, outputs, moves) and `REAL_JOBS` with
//! whisper tiny.en on real speech. Run by `scripts/leak-check.sh`.
//!
//!   leak_check MODEL [STUB_JOBS] [REAL_JOBS]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{wav, Stub};
use hotfolderd::config::Config;
use hotfolderd::journal::{Journal, State};
use hotfolderd::pipeline::transcribe::{Transcriber, WhisperTranscriber};

/// Allowed growth from the end of warm-up to the end: a leak of one descriptor per job or
/// a few KiB per job would pass neither over hundreds of jobs.
const MAX_FD_GROWTH: i64 = 4;
const MAX_RSS_GROWTH_KIB: i64 = 8 * 1024;

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as i64
}

struct Sample {
    jobs: usize,
    rss_kib: i64,
    fds: i64,
}

fn config(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("inbox")).unwrap();
    let config = dir.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = \"unused\"\nthreads = 1\n[[watch]]\npath = {:?}\n\
             output = {:?}\nstable_for = \"200ms\"\nafter = \"move\"\n",
            dir.join("state/journal.sqlite"),
            dir.join("inbox"),
            dir.join("out"),
        ),
    )
    .unwrap();
    config
}

fn done(dir: &Path) -> usize {
    let j = Journal::open(&dir.join("state/journal.sqlite")).unwrap();
    j.in_state(State::Done).unwrap().len() + j.in_state(State::Quarantined).unwrap().len()
}

/// Runs `jobs` jobs in `batches`, sampling after each; returns the samples.
fn phase(
    dir: &Path,
    transcriber: Arc<dyn Transcriber>,
    jobs: usize,
    batches: usize,
    input: impl Fn(usize) -> Vec<u8>,
) -> Vec<Sample> {
    let _ = std::fs::remove_dir_all(dir);
    let config = Config::load(&config(dir)).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(hotfolderd::daemon::run_with(config, transcriber, async {
            let _ = rx.await;
        }))
        .unwrap();
    });
    let per_batch = jobs.div_ceil(batches);
    let mut samples = Vec::new();
    let mut dropped = 0;
    while dropped < jobs {
        for _ in 0..per_batch.min(jobs - dropped) {
            let tmp = dir.join(format!("f{dropped}.wav.part"));
            std::fs::write(&tmp, input(dropped)).unwrap();
            std::fs::rename(&tmp, dir.join(format!("inbox/f{dropped}.wav"))).unwrap();
            dropped += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(1800);
        while done(dir) < dropped {
            assert!(Instant::now() < deadline, "jobs did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Let the runtime's idle blocking threads exit, as they would on a quiet daemon.
        std::thread::sleep(Duration::from_secs(11));
        samples.push(Sample {
            jobs: dropped,
            rss_kib: rss_kib(),
            fds: open_fds(),
        });
        let s = samples.last().unwrap();
        eprintln!("  {} jobs: RSS {} KiB, {} fds", s.jobs, s.rss_kib, s.fds);
    }
    let _ = tx.send(());
    daemon.join().unwrap();
    samples
}

/// Prints the table; whether both stayed within the limits after the first `warm` samples.
fn verdict(name: &str, samples: &[Sample], warm: usize) -> bool {
    println!("\n{name}\n\n| jobs done | RSS (MiB) | open fds |\n|---:|---:|---:|");
    for s in samples {
        println!(
            "| {} | {:.1} | {} |",
            s.jobs,
            s.rss_kib as f64 / 1024.0,
            s.fds
        );
    }
    let base = &samples[warm.min(samples.len() - 1)];
    let last = samples.last().unwrap();
    let rss = last.rss_kib - base.rss_kib;
    let fds = last.fds - base.fds;
    let jobs = (last.jobs - base.jobs).max(1) as f64;
    let ok = rss <= MAX_RSS_GROWTH_KIB && fds <= MAX_FD_GROWTH;
    println!(
        "\nafter warm-up ({} jobs): RSS {rss:+} KiB ({:+.2} KiB/job, limit {} MiB), fds {fds:+} \
         (limit {MAX_FD_GROWTH}) → {}",
        base.jobs,
        rss as f64 / jobs,
        MAX_RSS_GROWTH_KIB / 1024,
        if ok { "flat" } else { "GROWING" }
    );
    ok
}

fn speech(dir: &Path) -> Vec<u8> {
    let raw = dir.join("speech.raw.wav");
    let out = dir.join("speech.wav");
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg("A leak check of the daemon with the real model.")
        .status()
        .unwrap()
        .success()
        && std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i"])
            .arg(&raw)
            .args(["-ar", "16000", "-ac", "1"])
            .arg(&out)
            .status()
            .unwrap()
            .success();
    assert!(ok, "espeak-ng and ffmpeg are needed (scripts/deps.sh)");
    std::fs::read(out).unwrap()
}

/// `base` with `n` spelled into an appended 10 ms of near-silence: unique bytes, so no job
/// is deduplicated away.
fn unique(base: &[u8], n: usize) -> Vec<u8> {
    let data = base.windows(4).position(|w| w == b"data").unwrap();
    let mut out = base.to_vec();
    let mut tail = vec![0u8; 320];
    for (i, b) in (n as u64).to_le_bytes().into_iter().enumerate() {
        tail[2 * i] = b;
    }
    out.extend_from_slice(&tail);
    let riff = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    let len = u32::from_le_bytes(out[data + 4..data + 8].try_into().unwrap()) + 320;
    out[data + 4..data + 8].copy_from_slice(&len.to_le_bytes());
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = PathBuf::from(
        args.first()
            .expect("usage: leak_check MODEL [STUB_JOBS] [REAL_JOBS]"),
    );
    let stub_jobs: usize = args.get(1).map_or(1000, |a| a.parse().unwrap());
    let real_jobs: usize = args.get(2).map_or(50, |a| a.parse().unwrap());
    let base =
        PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target/leak-check".into()));
    std::fs::create_dir_all(&base).unwrap();

    eprintln!("stub transcriber: {stub_jobs} jobs");
    let stub = phase(&base.join("stub"), Arc::new(Stub), stub_jobs, 10, |i| {
        wav(i as u32)
    });
    eprintln!("whisper tiny.en: {real_jobs} jobs");
    let voice = speech(&base);
    let whisper: Arc<dyn Transcriber> = Arc::new(WhisperTranscriber::load(&model).unwrap());
    let real = phase(&base.join("real"), whisper, real_jobs, 5, |i| {
        unique(&voice, i)
    });

    let a = verdict(
        &format!(
            "Stub transcriber, {stub_jobs} jobs (sampled every {})",
            stub_jobs.div_ceil(10)
        ),
        &stub,
        2,
    );
    let b = verdict(
        &format!(
            "Whisper tiny.en, {real_jobs} jobs (sampled every {})",
            real_jobs.div_ceil(5)
        ),
        &real,
        1,
    );
    let _ = std::fs::remove_dir_all(&base);
    if !(a && b) {
        std::process::exit(1);
    }
}
