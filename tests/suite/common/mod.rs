//! Shared helpers for the integration tests: real models, real audio made with espeak-ng,
//! ffmpeg and sox, and word error rate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod hook;
pub mod moto;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hotfolderd::pipeline::decode::AudioDecoder16k;
use hotfolderd::pipeline::transcribe::{DecodeOptions, Transcriber, WhisperTranscriber};
use hotfolderd::pipeline::transcript::Transcript;

/// Where scripts/test.sh put the imported models.
pub fn models_dir() -> PathBuf {
    std::env::var_os("HOTFOLDERD_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("var/models"))
}

pub fn model(name: &str) -> PathBuf {
    let path = models_dir().join(format!("ggml-{name}.bin"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (it fetches and imports the test models)",
        path.display()
    );
    path
}

pub fn tiny() -> &'static WhisperTranscriber {
    static T: OnceLock<WhisperTranscriber> = OnceLock::new();
    T.get_or_init(|| WhisperTranscriber::load(&model("tiny.en")).unwrap())
}

/// whisper-cli defaults with Silero VAD (what `transcribe` does when setup imported it).
pub fn options_vad() -> DecodeOptions {
    DecodeOptions {
        vad_model: Some(model("silero-vad")),
        ..options()
    }
}

/// whisper-cli defaults, on one thread (tests run two at a time on two cores).
pub fn options() -> DecodeOptions {
    DecodeOptions {
        threads: 1,
        ..DecodeOptions::default()
    }
}

/// `hotfolderd transcribe --model MODEL --threads 1 --out OUT ARGS… INPUT`.
pub fn transcribe_cli(
    model_name: &str,
    args: &[&str],
    input: &Path,
    out: &Path,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .arg("transcribe")
        .arg("--model")
        .arg(model(model_name))
        .args(["--threads", "1", "--out"])
        .arg(out)
        .args(args)
        .arg(input)
        .output()
        .unwrap()
}

/// `transcribe_cli` with `--format json` and ARGS, which must succeed; the json written for
/// `input` (named by its stem).
pub fn transcribe_json(
    model_name: &str,
    args: &[&str],
    input: &Path,
    out: &Path,
) -> serde_json::Value {
    let done = transcribe_cli(
        model_name,
        &[&["--format", "json"], args].concat(),
        input,
        out,
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let stem = input.file_stem().unwrap().to_string_lossy();
    serde_json::from_slice(&std::fs::read(out.join(format!("{stem}.json"))).unwrap()).unwrap()
}

/// `seconds` of silence at 16 kHz mono in `path`.
pub fn silence_wav(path: &Path, seconds: f64) {
    sox(&[
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        path.to_str().unwrap(),
        "trim",
        "0",
        &seconds.to_string(),
    ]);
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Speech from espeak-ng, resampled by ffmpeg to 16 kHz mono wav.
pub fn speak(dir: &Path, name: &str, text: &str, voice: &str) -> PathBuf {
    let raw = dir.join(format!("{name}.raw.wav"));
    let out = dir.join(format!("{name}.wav"));
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&raw)
        .arg(text));
    ffmpeg(&raw, &out, &["-ar", "16000", "-ac", "1"]);
    out
}

pub fn ffmpeg(input: &Path, output: &Path, args: &[&str]) {
    run(Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(args)
        .arg(output));
}

pub fn sox(args: &[&str]) {
    run(Command::new("sox").args(args));
}

pub fn transcribe_file(t: &dyn Transcriber, path: &Path, opts: &DecodeOptions) -> Transcript {
    let mut d = AudioDecoder16k::open_path(path).unwrap();
    t.transcribe(&mut d, opts).unwrap()
}

/// Lowercased words without punctuation, numbers spelled out (whisper writes "40" for
/// "forty"): the same normalisation as scripts/wer.py.
pub fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .replace(',', "")
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .flat_map(|w| match w.parse::<u64>() {
            Ok(n) => spell(n),
            Err(_) => vec![w.to_string()],
        })
        .collect()
}

fn spell(n: u64) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let mut out: Vec<String> = Vec::new();
    match n {
        0..=19 => out.push(ONES[n as usize].into()),
        20..=99 => {
            out.push(TENS[(n / 10) as usize].into());
            if n % 10 > 0 {
                out.push(ONES[(n % 10) as usize].into());
            }
        }
        100..=999 => {
            out.extend([ONES[(n / 100) as usize].to_string(), "hundred".into()]);
            if n % 100 > 0 {
                out.extend(spell(n % 100));
            }
        }
        1000..=999_999 => {
            out.extend(spell(n / 1000));
            out.push("thousand".into());
            if n % 1000 > 0 {
                out.extend(spell(n % 1000));
            }
        }
        _ => out.push(n.to_string()),
    }
    out
}

/// Errors and insertions charged to one reference sentence by [`align`].
#[derive(Debug, Clone, Default)]
pub struct SentenceScore {
    pub words: usize,
    pub errors: usize,
    /// Its words that nothing in the hypothesis matched or replaced: speech lost.
    pub deletions: usize,
    /// Hypothesis words beside it that match nothing: speech invented or repeated.
    pub insertions: usize,
    /// The hypothesis words aligned to it.
    pub heard: Vec<String>,
}

impl SentenceScore {
    pub fn error_rate(&self) -> f64 {
        self.errors as f64 / self.words.max(1) as f64
    }
}

/// Aligns `hypothesis` to the sentences of a script (minimum edit distance) and says what
/// each sentence got: a sentence that was dropped has an error rate of 1, one that came out
/// twice has as many insertions as it has words.
pub fn align(sentences: &[String], hypothesis: &str) -> Vec<SentenceScore> {
    let mut r: Vec<String> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    let mut scores = vec![SentenceScore::default(); sentences.len()];
    for (k, s) in sentences.iter().enumerate() {
        let w = words(s);
        scores[k].words = w.len();
        owner.extend(std::iter::repeat_n(k, w.len()));
        r.extend(w);
    }
    let h = words(hypothesis);
    let (n, m) = (r.len(), h.len());
    let mut d = vec![vec![0u32; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i as u32;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j as u32;
    }
    for i in 1..=n {
        for j in 1..=m {
            let sub = d[i - 1][j - 1] + u32::from(r[i - 1] != h[j - 1]);
            d[i][j] = sub.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
        }
    }
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        if i > 0 && j > 0 && d[i][j] == d[i - 1][j - 1] + u32::from(r[i - 1] != h[j - 1]) {
            let s = &mut scores[owner[i - 1]];
            s.errors += usize::from(r[i - 1] != h[j - 1]);
            s.heard.insert(0, h[j - 1].clone());
            i -= 1;
            j -= 1;
        } else if i > 0 && d[i][j] == d[i - 1][j] + 1 {
            scores[owner[i - 1]].errors += 1;
            scores[owner[i - 1]].deletions += 1;
            i -= 1;
        } else {
            let s = &mut scores[if i > 0 { owner[i - 1] } else { 0 }];
            s.errors += 1;
            s.insertions += 1;
            s.heard.insert(0, format!("+{}", h[j - 1]));
            j -= 1;
        }
    }
    scores
}

/// Word error rate: word-level edit distance over the reference length.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// Timestamps are ordered and inside the audio, and no segment overlaps another.
pub fn assert_sane_timestamps(t: &Transcript) {
    let mut last_start = 0.0;
    let mut last_end = 0.0;
    for s in &t.segments {
        assert!(
            s.start >= last_start - 1e-6,
            "segments out of order: {:?}",
            t.segments
        );
        assert!(
            s.start >= last_end - 1e-6,
            "segment starts at {} before the previous one ended at {last_end}: {s:?}",
            s.start
        );
        assert!(s.start <= s.end, "segment ends before it starts: {s:?}");
        assert!(
            s.end <= t.duration + 1e-6,
            "segment past the end ({}): {s:?}",
            t.duration
        );
        for w in &s.words {
            assert!(
                w.start >= s.start - 0.05 && w.end <= s.end + 0.05,
                "word outside its segment: {w:?} in {s:?}"
            );
        }
        last_start = s.start;
        last_end = s.end;
    }
}

#[test]
fn wer_counts_edits() {
    assert_eq!(wer("the cat sat", "the cat sat"), 0.0);
    assert!((wer("the cat sat", "the bat sat down") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(wer("a b", ""), 1.0);
    assert_eq!(wer("forty ships at six", "40 ships at 6."), 0.0);
    assert_eq!(
        words("In 1984, 215 people"),
        [
            "in", "one", "thousand", "nine", "hundred", "eighty", "four", "two", "hundred",
            "fifteen", "people"
        ]
    );
}

#[test]
fn alignment_charges_each_sentence() {
    let script = ["the cat sat".to_string(), "a dog ran home".to_string()];
    let s = align(&script, "the cat sat a dog ran home");
    assert_eq!((s[0].errors, s[1].errors), (0, 0));
    // Dropped, and repeated.
    let s = align(&script, "a dog ran home");
    assert_eq!(
        (s[0].error_rate(), s[0].deletions, s[1].errors),
        (1.0, 3, 0)
    );
    let s = align(&script, "the cat sat a dog ran home a dog ran home");
    assert_eq!(s.iter().map(|x| x.insertions).sum::<usize>(), 4);
}

/// Writes a daemon config under `dir` (journal in `state/`, one folder `inbox` → `out`,
/// tiny.en on one thread, after = "move"); returns its path.
pub fn write_daemon_config(dir: &Path, stable_for: &str) -> PathBuf {
    let config = dir.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n[[watch]]\npath = {:?}\noutput = {:?}\nstable_for = {stable_for:?}\nafter = \"move\"\n",
            dir.join("state/journal.sqlite"),
            model("tiny.en"),
            dir.join("inbox"),
            dir.join("out")
        ),
    )
    .unwrap();
    config
}

/// A running `hotfolderd run`. Dropped (the test ended or panicked) without being stopped,
/// it is killed, so no daemon outlives its test.
pub struct Daemon {
    pub child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start the daemon.
#[derive(Default)]
pub struct Start<'a> {
    /// Send its logs here instead of the test's stderr.
    pub log: Option<&'a Path>,
    /// Extra environment (e.g. the S3 emulator's endpoint and dummy credentials).
    pub env: Vec<(String, String)>,
    /// When the tests run as root: run it as `nobody` (after giving `nobody` the test's
    /// folder), so file permissions apply to it as they do to a service account.
    pub unprivileged_in: Option<&'a Path>,
    /// When root: run it as `nobody` in folders the caller already handed over (a chown
    /// racing files the daemon moves would fail).
    pub as_nobody: bool,
}

/// Starts `hotfolderd run --config CONFIG` (logs to the test's stderr).
pub fn start_daemon(config: &Path) -> Daemon {
    start_daemon_with(config, Start::default())
}

pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

pub fn start_daemon_with(config: &Path, how: Start<'_>) -> Daemon {
    let bin = env!("CARGO_BIN_EXE_hotfolderd");
    let root = is_root();
    if let (Some(dir), true) = (how.unprivileged_in, root) {
        run(Command::new("chown").args(["-R", "65534:65534"]).arg(dir));
    }
    let mut cmd = if root && (how.unprivileged_in.is_some() || how.as_nobody) {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--reset-env",
            "env",
        ]);
        // --reset-env clears what `envs` would set: hand it over through env(1).
        c.args(how.env.iter().map(|(k, v)| format!("{k}={v}")));
        c.arg(bin);
        c
    } else {
        let mut c = Command::new(bin);
        c.envs(how.env.iter().map(|(k, v)| (k, v)));
        c
    };
    cmd.args(["run", "--config"]).arg(config);
    cmd.stdout(Stdio::null());
    match how.log {
        Some(log) => cmd.stderr(std::fs::File::create(log).unwrap()),
        None => cmd.stderr(Stdio::inherit()),
    };
    Daemon {
        child: cmd.spawn().unwrap(),
    }
}

/// Sends `signal` (e.g. "TERM", "KILL") to the daemon and waits for it.
pub fn signal_daemon(daemon: &mut Daemon, signal: &str) -> std::process::ExitStatus {
    run(Command::new("kill").args([&format!("-{signal}"), &daemon.child.id().to_string()]));
    daemon.child.wait().unwrap()
}

/// SIGTERM, and the daemon must exit 0.
pub fn stop(mut daemon: Daemon) {
    let status = signal_daemon(&mut daemon, "TERM");
    assert!(status.success(), "daemon exit after SIGTERM: {status:?}");
}

/// Waits (generously: CI machines are slow) until `done` holds, or fails with `what`.
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_up_to(Duration::from_secs(300), what, done)
}

pub fn wait_up_to(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `hotfolderd ARGS... --config CONFIG`'s output; the command must succeed.
pub fn hotfolderd(args: &[&str], config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `hotfolderd status --config CONFIG`'s output.
pub fn status(config: &Path) -> String {
    hotfolderd(&["status"], config)
}

/// Every file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// (key, state, times it ran) for every input in the journal under `d/state/`.
pub fn journal_rows(d: &Path) -> Vec<(String, hotfolderd::journal::State, usize)> {
    let path = d.join("state/journal.sqlite");
    if !path.exists() {
        return Vec::new();
    }
    let j = hotfolderd::journal::Journal::open(&path).unwrap();
    hotfolderd::journal::State::ALL
        .iter()
        .flat_map(|s| j.in_state(*s).unwrap())
        .map(|id| {
            let i = j.get(id).unwrap().unwrap();
            let runs = j
                .history(id)
                .unwrap()
                .iter()
                .filter(|e| e.1 == "running")
                .count();
            (i.key, i.state, runs)
        })
        .collect()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path`; (status, body).
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The first sample of `name` with all of `labels` in a Prometheus text scrape (a histogram
/// gives its count).
pub fn metric_value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            other => panic!("{name}: {other:?}"),
        })
}

/// Journal or audit-log events as (seq, event).
pub type Events = Vec<(i64, String)>;

/// (audit log, journal) events under `d/state/`.
pub fn audit_and_journal_events(d: &Path) -> (Events, Events) {
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let journal_events: Vec<(i64, String)> = j
        // A long soak writes far more than a test's few hundred events.
        .events_after(0, 10_000_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.event))
        .collect();
    let audit: Vec<(i64, String)> = std::fs::read_to_string(d.join("state/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["seq"].as_i64().unwrap(),
                v["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (audit, journal_events)
}

/// The audit log under `d/state/` holds exactly the journal's events, in order, once each;
/// returns them as (seq, event).
pub fn audit_matches_journal(d: &Path) -> Vec<(i64, String)> {
    let (audit, journal_events) = audit_and_journal_events(d);
    assert_eq!(
        audit, journal_events,
        "the audit log and the journal disagree"
    );
    audit
}

/// Speaks `text` into `d/inbox/NAME.wav` and waits for its transcript in `d/out`: the
/// `model_sha256` its json names (which model the daemon served it with).
pub fn transcribed_by(d: &Path, name: &str, text: &str) -> String {
    let wav = speak(d, name, text, "en-us");
    std::fs::copy(&wav, d.join("inbox").join(format!("{name}.wav"))).unwrap();
    let out = d.join("out").join(format!("{name}.json"));
    wait_until("its transcript", || out.is_file());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    json["model_sha256"].as_str().unwrap().to_string()
}
