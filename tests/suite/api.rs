//! `[http] api = true`: files submitted over HTTP go through the journal and the job path
//! like dropped files. OpenAI's official Python client and curl talk to a running daemon;
//! `kill -9` during an upload and during a job leaves no job or exactly one; a 1 GiB upload
//! is streamed with flat memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::hook::Request;
use crate::common::*;

/// A daemon config with no folder, the API on `port`, and `extra` lines in `[http]`.
fn api_config(d: &Path, model_name: &str, port: u16, extra: &str) -> PathBuf {
    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n[http]\nlisten = \"127.0.0.1:{port}\"\napi = true\n{extra}\n",
            d.join("state/journal.sqlite"),
            model(model_name),
        ),
    )
    .unwrap();
    config
}

fn wait_for_server(port: u16) {
    wait_until("the HTTP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// `curl` with `args`; (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = curl_output(args);
    parse_curl(&out)
}

fn curl_output(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap()
}

fn parse_curl(out: &Output) -> (u16, String) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn upload(port: u16, route: &str, file: &Path, fields: &[&str], headers: &[&str]) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{route}");
    let form = format!("file=@{}", file.display());
    let mut args: Vec<&str> = vec!["-F", &form];
    for f in fields {
        args.extend(["-F", f]);
    }
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(&url);
    curl(&args)
}

/// The journal's HTTP jobs, newest first.
fn jobs(d: &Path) -> Vec<hotfolderd::journal::HttpJob> {
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    j.http_jobs(None, 1000).unwrap()
}

/// The files in the uploads folder (not its quarantine).
fn uploads(d: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(d.join("state/uploads"))
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an upload is arriving: its temporary file exists from the file part's first byte.
fn upload_arriving(d: &Path) -> bool {
    std::fs::read_dir(d.join("state/uploads"))
        .map(|r| {
            r.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with('.'))
        })
        .unwrap_or(false)
}

#[test]
fn the_official_openai_client_gets_text_srt_verbose_json_with_words_and_a_translation() {
    let Ok(python) = std::env::var("HOTFOLDERD_CLIENT_PYTHON") else {
        panic!("HOTFOLDERD_CLIENT_PYTHON must name a python with the openai package (scripts/client-venv.sh)");
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::write(d.join("api.token"), "s3cret-token\n").unwrap();
    let config = api_config(
        d,
        "base",
        port,
        &format!("api_token_file = {:?}", d.join("api.token")),
    );
    let _daemon = start_daemon(&config);
    wait_for_server(port);
    let english = speak(
        d,
        "english",
        "The quick brown fox jumps over the lazy dog.",
        "en-us",
    );
    let german = speak(
        d,
        "german",
        "Ich wohne seit zehn Jahren in einer kleinen Stadt.",
        "de",
    );
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openai_client.py"
        ))
        .arg(format!("http://127.0.0.1:{port}/v1"))
        .arg("s3cret-token")
        .arg(&english)
        .arg(&german)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the client failed: {out:?}");
    let r = json(&String::from_utf8_lossy(&out.stdout));
    eprintln!("{r:#}");
    let said = ["quick", "brown", "fox", "lazy", "dog"];
    let text = r["text"].as_str().unwrap().to_lowercase();
    for w in said {
        assert!(text.contains(w), "{w} not in the text reply {text:?}");
    }
    assert!(
        text.ends_with('\n'),
        "text replies end with a newline: {text:?}"
    );
    assert_eq!(r["json"].as_str().unwrap().trim(), text.trim());
    let srt = r["srt"].as_str().unwrap();
    assert!(srt.starts_with("1\n00:00:0"), "{srt}");
    assert!(
        srt.contains(" --> ") && srt.to_lowercase().contains("fox"),
        "{srt}"
    );
    let v = &r["verbose"];
    assert_eq!(v["task"], "transcribe");
    assert_eq!(v["language"], "english");
    assert!(v["duration"].as_f64().unwrap() > 1.0, "{v}");
    let words = v["words"].as_array().unwrap();
    assert!(words.len() >= 5, "{v}");
    let mut last = 0.0;
    for w in words {
        let (s, e) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(
            s >= last - 0.01 && e >= s,
            "word times go forward: {w} after {last}"
        );
        last = s;
    }
    assert!(words
        .iter()
        .any(|w| w["word"].as_str().unwrap().to_lowercase().contains("fox")));
    assert!(!v["segments"].as_array().unwrap().is_empty(), "{v}");
    // base translates the German sentence into English.
    let translation = r["translation"].as_str().unwrap().to_lowercase();
    let english_words = [
        "live", "lived", "living", "years", "ten", "small", "town", "city",
    ];
    let found = english_words
        .iter()
        .filter(|w| words_of(&translation).contains(&w.to_string()))
        .count();
    assert!(found >= 2, "not English: {translation:?}");
    assert!(!translation.contains("jahren"), "{translation:?}");
    assert_eq!(r["unknown_model"]["status"], 400);
    let message = r["unknown_model"]["body"]["message"].as_str().unwrap();
    assert!(
        message.contains("no-such-model") && message.contains("whisper-1"),
        "{message}"
    );
    assert!(r["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "whisper-1"));
    assert_eq!(r["wrong_key"], 401);
    // Every request is one journaled input of source http, done.
    let journaled = jobs(d);
    assert_eq!(journaled.len(), 5, "{journaled:?}");
    assert!(journaled
        .iter()
        .all(|j| j.state == hotfolderd::journal::State::Done));
    assert!(
        uploads(d).is_empty(),
        "finished uploads are removed: {:?}",
        uploads(d)
    );
}

fn words_of(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn curl_uploads_are_journaled_once_per_idempotency_key_and_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let config = api_config(
        d,
        "tiny.en",
        port,
        "max_upload_size = \"300KB\"\nmax_concurrent_uploads = 1",
    );
    let _daemon = start_daemon(&config);
    wait_for_server(port);
    let clip = speak(d, "clip", "Hello from the upload.", "en-us");

    // A plain upload: OpenAI's json reply.
    let (status, body) = upload(
        port,
        "/v1/audio/transcriptions",
        &clip,
        &["model=whisper-1"],
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let text = json(&body)["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("upload"), "{text}");

    // The same Idempotency-Key twice: one input.
    let key = ["Idempotency-Key: retry-me-1"];
    let first = upload(
        port,
        "/v1/audio/transcriptions",
        &clip,
        &["response_format=text"],
        &key,
    );
    let again = upload(
        port,
        "/v1/audio/transcriptions",
        &clip,
        &["response_format=text"],
        &key,
    );
    assert_eq!(first.0, 200, "{first:?}");
    assert_eq!(first, again);
    assert_eq!(jobs(d).len(), 2, "{:?}", jobs(d));
    // The key again with another file: 422 naming the first job, no input, no file left.
    let other = speak(d, "other", "Something else entirely.", "en-us");
    let (status, body) = upload(
        port,
        "/v1/audio/transcriptions",
        &other,
        &["response_format=text"],
        &key,
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(json(&body)["error"]["code"], "idempotency_key_reused");
    assert!(body.contains(&jobs(d)[0].job_id), "{body}");
    assert_eq!(jobs(d).len(), 2, "{:?}", jobs(d));
    assert!(uploads(d).is_empty(), "{:?}", uploads(d));

    // Not audio: 400 with the reason the journal records; the upload is quarantined.
    let noise = d.join("noise.wav");
    std::fs::write(
        &noise,
        (0..20_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let (status, body) = upload(port, "/v1/audio/transcriptions", &noise, &[], &[]);
    assert_eq!(status, 400, "{body}");
    let message = json(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let rejected = jobs(d).into_iter().next().unwrap();
    assert_eq!(rejected.state, hotfolderd::journal::State::Quarantined);
    assert_eq!(rejected.last_error.as_deref(), Some(message.as_str()));
    assert!(message.starts_with("decode: "), "{message}");
    assert_eq!(
        std::fs::read_dir(d.join("state/uploads/quarantine"))
            .unwrap()
            .count(),
        1
    );
    // `hotfolderd retry` brings the upload back from quarantine and runs it again.
    let retried = hotfolderd(&["retry", &rejected.input_id.to_string()], &config);
    assert!(retried.contains("re-queued"), "{retried}");
    wait_until("the retried upload to be rejected again", || {
        let h = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite"))
            .unwrap()
            .history(rejected.input_id)
            .unwrap();
        h.iter().filter(|e| e.1 == "quarantined").count() == 2
    });
    assert_eq!(
        std::fs::read_dir(d.join("state/uploads/quarantine"))
            .unwrap()
            .count(),
        1
    );

    // Over max_upload_size: 413, JSON, nothing journaled, nothing left.
    let big = d.join("big.wav");
    silence_wav(&big, 12.0);
    let (status, body) = upload(port, "/v1/audio/transcriptions", &big, &[], &[]);
    assert_eq!(status, 413, "{body}");
    assert_eq!(json(&body)["error"]["code"], "upload_too_large");
    // An unknown model: 400 naming the known ones; a bad field: 400 naming the field.
    let (status, body) = upload(
        port,
        "/v1/audio/transcriptions",
        &clip,
        &["model=large-v9"],
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"]["param"], "model");
    assert!(
        body.contains("whisper-1") && body.contains("ggml-tiny.en"),
        "{body}"
    );
    let (status, body) = upload(
        port,
        "/v1/audio/transcriptions",
        &clip,
        &["response_format=xml"],
        &[],
    );
    assert_eq!(
        (status, json(&body)["error"]["param"].clone()),
        (400, "response_format".into())
    );
    assert_eq!(jobs(d).len(), 3);
    assert!(uploads(d).is_empty(), "{:?}", uploads(d));

    // The jobs API: 202 at once, then the job and its outputs.
    let (status, body) = upload(port, "/v1/jobs", &clip, &[], &[]);
    assert_eq!(status, 202, "{body}");
    let id = json(&body)["id"].as_str().unwrap().to_string();
    wait_until("the job to end", || {
        let (_, b) = http_get(port, &format!("/v1/jobs/{id}"), None);
        json(&b)["state"] == "done"
    });
    let (_, b) = http_get(port, &format!("/v1/jobs/{id}"), None);
    let job = json(&b);
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["filename"], "clip.wav");
    let srt_url = job["outputs"]["srt"].as_str().unwrap();
    let (status, srt) = http_get(port, srt_url, None);
    assert_eq!(status, 200);
    assert!(
        srt.contains(" --> ") && srt.to_lowercase().contains("upload"),
        "{srt}"
    );
    // `Prefer: respond-async` on OpenAI's route: the job at once, as the jobs API gives it.
    let headers = d.join("headers.txt");
    let form = format!("file=@{}", clip.display());
    let (status, body) = curl(&[
        "-D",
        headers.to_str().unwrap(),
        "-H",
        "Prefer: respond-async",
        "-F",
        &form,
        &format!("http://127.0.0.1:{port}/v1/audio/transcriptions"),
    ]);
    assert_eq!(status, 202, "{body}");
    assert!(json(&body)["url"]
        .as_str()
        .unwrap()
        .starts_with("/v1/jobs/"));
    let headers = std::fs::read_to_string(&headers).unwrap().to_lowercase();
    assert!(
        headers.contains("preference-applied: respond-async"),
        "{headers}"
    );
    let (_, listing) = http_get(port, "/v1/jobs?state=quarantined", None);
    assert_eq!(json(&listing)["data"].as_array().unwrap().len(), 1);
    assert_eq!(http_get(port, "/v1/jobs/nope", None).0, 404);

    // One upload at a time here: a second one meanwhile gets 429.
    let slow = d.join("slow.wav");
    silence_wav(&slow, 8.0);
    let url = format!("http://127.0.0.1:{port}/v1/jobs");
    let form = format!("file=@{}", slow.display());
    let mut trickle = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--limit-rate",
            "20k",
            "-F",
            &form,
            &url,
        ])
        .spawn()
        .unwrap();
    wait_until("the slow upload to be arriving", || upload_arriving(d));
    let (status, refused) = upload(port, "/v1/jobs", &clip, &[], &[]);
    assert_eq!(status, 429, "{refused}");
    assert!(
        trickle.try_wait().unwrap().is_none(),
        "the slow upload was still arriving"
    );
    assert_eq!(json(&refused)["error"]["code"], "too_many_uploads");
    assert!(trickle.wait().unwrap().success());
}

/// The daemon's peak resident memory (kB).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_one_gib_upload_streams_to_disk_with_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let config = api_config(d, "tiny.en", port, "");
    let daemon = start_daemon(&config);
    wait_for_server(port);
    let clip = speak(d, "warm", "Warming up.", "en-us");
    let (status, body) = upload(port, "/v1/audio/transcriptions", &clip, &[], &[]);
    assert_eq!(status, 200, "{body}");
    let before = peak_rss_kb(daemon.child.id());
    // 1 GiB of zeros, sparse on disk (not audio: once journaled, it is quarantined).
    let big = d.join("big.wav");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (status, body) = upload(port, "/v1/jobs", &big, &[], &[]);
    assert_eq!(status, 202, "{body}");
    let after = peak_rss_kb(daemon.child.id());
    let id = json(&body)["id"].as_str().unwrap().to_string();
    let job = jobs(d).into_iter().find(|j| j.job_id == id).unwrap();
    let request: serde_json::Value = serde_json::from_str(&job.request).unwrap();
    assert_eq!(request["size"], 1u64 << 30);
    eprintln!("peak RSS {before} kB before the 1 GiB upload, {after} kB after");
    assert!(
        after < before + 64 * 1024,
        "peak RSS grew by {} kB for a 1 GiB upload",
        after - before
    );
}

#[test]
fn kill_9_during_an_upload_leaves_no_job_and_during_a_job_the_job_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let config = api_config(d, "tiny.en", port, "");
    let mut daemon = start_daemon(&config);
    wait_for_server(port);
    let speech = speak(
        d,
        "long",
        &"The daemon keeps every upload it promised, exactly once. ".repeat(6),
        "en-us",
    );

    // 1. Killed while the upload arrives: the client gets no success, and no job exists.
    let url = format!("http://127.0.0.1:{port}/v1/audio/transcriptions");
    let form = format!("file=@{}", speech.display());
    let trickle = Command::new("curl")
        .args([
            "-sS",
            "-w",
            "\n%{http_code}",
            "--limit-rate",
            "50k",
            "-H",
            "Idempotency-Key: K1",
            "-F",
            &form,
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the upload to be arriving", || upload_arriving(d));
    signal_daemon(&mut daemon, "KILL");
    let cut = trickle.wait_with_output().unwrap();
    assert_ne!(parse_curl(&cut).0, 200, "{cut:?}");
    let mut daemon = start_daemon(&config);
    wait_for_server(port);
    assert!(jobs(d).is_empty(), "{:?}", jobs(d));
    assert!(
        uploads(d).is_empty(),
        "the cut upload's file is removed: {:?}",
        uploads(d)
    );
    // The client's retry with the same key: one job, done once.
    let key = ["Idempotency-Key: K1"];
    let (status, body) = upload(port, "/v1/audio/transcriptions", &speech, &[], &key);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        upload(port, "/v1/audio/transcriptions", &speech, &[], &key),
        (status, body)
    );
    assert_eq!(jobs(d).len(), 1);

    // 2. Killed while the job runs: after the restart it is done, once.
    let other = speak(
        d,
        "other",
        &"A second recording that runs while the daemon dies. ".repeat(6),
        "en-us",
    );
    let (status, body) = upload(port, "/v1/jobs", &other, &[], &[]);
    assert_eq!(status, 202, "{body}");
    let id = json(&body)["id"].as_str().unwrap().to_string();
    wait_until("the job to run", || {
        json(&http_get(port, &format!("/v1/jobs/{id}"), None).1)["state"] == "running"
    });
    signal_daemon(&mut daemon, "KILL");
    let daemon = start_daemon(&config);
    wait_for_server(port);
    wait_until("the job to be done after the restart", || {
        json(&http_get(port, &format!("/v1/jobs/{id}"), None).1)["state"] == "done"
    });
    let job = jobs(d).into_iter().find(|j| j.job_id == id).unwrap();
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let history = j.history(job.input_id).unwrap();
    let count = |state: &str| history.iter().filter(|e| e.1 == state).count();
    assert_eq!(count("done"), 1, "{history:?}");
    assert_eq!(count("running"), 2, "{history:?}");
    let (status, txt) = http_get(port, &format!("/v1/jobs/{id}/outputs/txt"), None);
    assert_eq!(status, 200);
    assert!(txt.to_lowercase().contains("recording"), "{txt}");
    stop(daemon);
}

#[test]
fn a_long_job_shows_progress_everywhere_streams_events_and_is_cancelled_inside_whisper() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let config = api_config(d, "tiny.en", port, "");
    let log = d.join("daemon.log");
    let _daemon = start_daemon_with(
        &config,
        Start {
            log: Some(&log),
            ..Start::default()
        },
    );
    wait_for_server(port);
    let long = speak(
        d,
        "long",
        &"Every running job says how far it is, in seconds of audio. ".repeat(40),
        "en-us",
    );
    let short = speak(d, "short", "Waiting in the queue.", "en-us");
    let (status, body) = upload(port, "/v1/jobs", &long, &[], &[]);
    assert_eq!(status, 202, "{body}");
    let id = json(&body)["id"].as_str().unwrap().to_string();
    // Its events, followed from the start.
    let events_file = d.join("events.txt");
    let mut events = Command::new("curl")
        .args(["-sS", "-N", "-o"])
        .arg(&events_file)
        .arg(format!("http://127.0.0.1:{port}/v1/jobs/{id}/events"))
        .spawn()
        .unwrap();
    // A second job waits behind it (one worker): cancelled before it runs.
    let (_, body) = upload(port, "/v1/jobs", &short, &[], &[]);
    let queued = json(&body)["id"].as_str().unwrap().to_string();

    let mut seen = serde_json::Value::Null;
    wait_until("the long job to be part way", || {
        seen = json(&http_get(port, &format!("/v1/jobs/{id}"), None).1);
        let p = seen["progress"].as_f64().unwrap();
        seen["state"] == "running" && p > 0.0 && p < 0.9
    });
    let total = seen["audio_seconds_total"].as_f64().unwrap();
    assert!(total > 100.0, "{seen}");
    wait_until("hotfolderd status to show the running job", || {
        let s = crate::common::status(&config);
        s.contains("running:") && s.contains(&format!("http:api {id}: ")) && s.contains(" % (")
    });
    let (_, metrics) = http_get(port, "/metrics", None);
    let input = seen_input(d, &id).to_string();
    let done = metric_value(
        &metrics,
        "hotfolderd_job_audio_seconds_done",
        &[("input", &input)],
    );
    assert!(done.is_some_and(|s| s > 0.0), "{metrics}");
    assert_eq!(
        metric_value(
            &metrics,
            "hotfolderd_job_audio_seconds_total",
            &[("input", &input)]
        ),
        Some(total)
    );

    let cancel = |job: &str| {
        curl(&[
            "-X",
            "DELETE",
            &format!("http://127.0.0.1:{port}/v1/jobs/{job}"),
        ])
    };
    let (status, body) = cancel(&queued);
    assert_eq!(
        (status, json(&body)["state"].clone()),
        (200, "cancelled".into()),
        "{body}"
    );
    let (status, body) = cancel(&id);
    assert_eq!(status, 200, "{body}");
    let cancelled = json(&body);
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancel(&id).0, 200, "cancelling again says the same");
    // Stopped inside whisper.cpp, well before the end of the audio.
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    for (job, ran) in [(&id, 1), (&queued, 0)] {
        let row = j.http_job(job).unwrap().unwrap();
        assert_eq!(row.state, hotfolderd::journal::State::Cancelled);
        let history = j.history(row.input_id).unwrap();
        assert_eq!(
            history.iter().filter(|e| e.1 == "running").count(),
            ran,
            "{history:?}"
        );
        assert_eq!(history.last().unwrap().1, "cancelled", "{history:?}");
    }
    assert!(uploads(d).is_empty(), "{:?}", uploads(d));
    assert!(!crate::common::status(&config).contains("running:"));
    // A cancel is not an error: whisper.cpp's "failed to encode" after its abort is not
    // logged as one.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.lines().any(|l| l.contains("ERROR")), "{logged}");
    // The event stream told the story and ended.
    assert!(events.wait().unwrap().success());
    let text = std::fs::read_to_string(&events_file).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.first(), Some(&"state"), "{text}");
    assert!(kinds.contains(&"progress"), "{text}");
    let last_data = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    assert_eq!(json(last_data)["state"], "cancelled", "{text}");
}

/// The journal id of HTTP job `job_id`.
fn seen_input(d: &Path, job_id: &str) -> i64 {
    jobs(d)
        .into_iter()
        .find(|j| j.job_id == job_id)
        .unwrap()
        .input_id
}

#[test]
fn hotfolderd_transcribe_shows_progress_as_lines_or_as_a_bar_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = speak(
        d,
        "long",
        &"A progress bar on a terminal, plain lines in a log. ".repeat(9),
        "en-us",
    );
    let bin = env!("CARGO_BIN_EXE_hotfolderd");
    let args = |out: &str| {
        format!(
            "{bin} transcribe --model {} --threads 1 --no-vad --out {} {}",
            model("tiny.en").display(),
            d.join(out).display(),
            long.display()
        )
    };
    // Not a terminal: a plain line at each tenth reached.
    let out = Command::new("sh")
        .args(["-c", &args("plain")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}: ", long.display());
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert!(lines.len() >= 2, "{stderr}");
    assert!(lines.last().unwrap().contains("100% ("), "{stderr}");
    assert!(!stderr.contains('\r'), "{stderr:?}");
    // A terminal (script(1) gives it one): a bar redrawn in place.
    let out = Command::new("script")
        .args(["-qec", &args("tty"), "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains('\r') && screen.contains("[#") && screen.contains("%"),
        "{screen:?}"
    );
    assert!(d.join("tty/long.txt").is_file() && d.join("plain/long.txt").is_file());
}

#[test]
fn a_job_can_name_an_s3_object_and_its_callback_arrives_signed() {
    use hmac::{KeyInit, Mac};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let moto = crate::common::moto::Moto::start();
    let speech = speak(d, "talk", "Fetched from the bucket for you.", "en-us");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (s3, _) = moto.clients().await;
        s3.create_bucket().bucket("media").send().await.unwrap();
        s3.put_object()
            .bucket("media")
            .key("in/talk.wav")
            .body(std::fs::read(&speech).unwrap().into())
            .send()
            .await
            .unwrap();
    });
    let hook = crate::common::hook::Hook::start();
    let secret = "callback-signing-key";
    std::fs::write(d.join("callback.secret"), secret).unwrap();
    let port = free_port();
    let config = api_config(
        d,
        "tiny.en",
        port,
        &format!(
            "callback_secret_file = {:?}\nforce_path_style = true",
            d.join("callback.secret")
        ),
    );
    let _daemon = start_daemon_with(
        &config,
        Start {
            env: moto.env(),
            ..Start::default()
        },
    );
    wait_for_server(port);
    let post_json = |body: serde_json::Value| {
        curl(&[
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
            &format!("http://127.0.0.1:{port}/v1/jobs"),
        ])
    };
    let (status, body) = post_json(serde_json::json!({
        "url": "s3://media/in/talk.wav",
        "callback_url": hook.url(),
        "language": "en",
    }));
    assert_eq!(status, 202, "{body}");
    let id = json(&body)["id"].as_str().unwrap().to_string();
    // A bad upload with a callback: its callback says quarantined.
    let noise = d.join("noise.wav");
    std::fs::write(&noise, vec![7u8; 5000]).unwrap();
    let callback = format!("callback_url={}", hook.url());
    let (status, body) = upload(port, "/v1/jobs", &noise, &[&callback], &[]);
    assert_eq!(status, 202, "{body}");
    let bad = json(&body)["id"].as_str().unwrap().to_string();
    wait_until("both callbacks", || hook.received().len() >= 2);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let got = hook.received();
    assert_eq!(got.len(), 2, "one callback per job: {got:?}");
    for r in &got {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&r.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(r.headers.get("x-hotfolderd-signature"), Some(&expected));
        assert_eq!(
            r.headers.get("x-hotfolderd-delivery").map(String::as_str),
            r.json()["delivery"].as_str()
        );
    }
    let by_job = |job: &str| {
        got.iter()
            .map(Request::json)
            .find(|doc| doc["source"]["job_id"] == job)
            .unwrap_or_else(|| panic!("no callback for {job}: {got:?}"))
    };
    assert_eq!(by_job(&id)["event"], "done");
    assert_eq!(by_job(&id)["source"]["kind"], "http");
    assert_eq!(by_job(&id)["source"]["filename"], "talk.wav");
    assert_eq!(by_job(&bad)["event"], "quarantined");
    let (status, txt) = http_get(port, &format!("/v1/jobs/{id}/outputs/txt"), None);
    assert_eq!(status, 200);
    assert!(txt.to_lowercase().contains("for you"), "{txt}");

    // A missing object, a URL that is not S3, and a callback to another machine in plain http.
    let (status, body) = post_json(serde_json::json!({"url": "s3://media/in/nope.wav"}));
    assert_eq!(
        (status, json(&body)["error"]["param"].clone()),
        (400, "url".into()),
        "{body}"
    );
    let (status, body) = post_json(serde_json::json!({"url": "https://example.com/a.wav"}));
    assert_eq!(
        (status, json(&body)["error"]["param"].clone()),
        (400, "url".into()),
        "{body}"
    );
    let (status, body) = post_json(serde_json::json!({
        "url": "s3://media/in/talk.wav", "callback_url": "http://10.1.2.3/hook"
    }));
    assert_eq!(
        (status, json(&body)["error"]["param"].clone()),
        (400, "callback_url".into()),
        "{body}"
    );
    assert_eq!(jobs(d).len(), 2);
}
