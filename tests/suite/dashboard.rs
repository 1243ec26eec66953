//! The dashboard at `/`, in real headless Chromium (driven through chromedriver's WebDriver
//! protocol) on a running daemon with real jobs: the DOM shows the queue, a finished job
//! with links to its outputs and a dataset's hours toward its next run; a screenshot is
//! taken; a file dropped later appears without a reload (the page follows the event stream).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::common::*;

/// A chromedriver process with one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/deps.sh --test installs it)");
        let base = format!("http://127.0.0.1:{port}");
        wait_up_to(Duration::from_secs(60), "chromedriver", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1100"],
            },
        }}});
        let made = b.call("POST", "/session", Some(caps));
        b.session = made["value"]["sessionId"].as_str().unwrap().to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-X", method, &format!("{}{path}", self.base)]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
        }
        let out = cmd.output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.call(method, &format!("/session/{}{path}", self.session), body);
        assert!(v["value"].get("error").is_none(), "{path}: {v}");
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})));
    }

    fn run(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn text(&self, id: &str) -> String {
        let v = self.run(&format!(
            "const e = document.getElementById('{id}'); return e ? e.innerText : '';"
        ));
        v.as_str().unwrap_or_default().to_string()
    }

    fn screenshot(&self, to: &Path) {
        let v = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn the_dashboard_shows_the_queue_a_finished_job_and_a_datasets_progress_live() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n\
             [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"300ms\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\napi = true\n\
             [[dataset]]\nname = \"calls\"\nsources = [{inbox:?}]\npath = {:?}\n\
             train_after_hours = 1.0\nmin_segment_seconds = 0.5\n\
             [dataset.trainer]\ncommand = [\"true\"]\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            d.join("out"),
            d.join("datasets/calls"),
        ),
    )
    .unwrap();
    // A finished training run as the daemon leaves it (journal row, metrics, eval record):
    // the page draws its loss curve and WER before and after.
    let run = "calls-20261206T120000Z-a1b2";
    {
        let mut j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
        j.run_start(run, "calls", 3600.0).unwrap();
        j.run_end(run, hotfolderd::journal::RunState::Succeeded, "exit 0")
            .unwrap();
    }
    let run_dir = d.join("datasets/calls/runs").join(run);
    std::fs::create_dir_all(&run_dir).unwrap();
    let metrics: String = (1..=40)
        .map(|step| {
            format!(
                "{{\"step\": {step}, \"loss\": {}}}\n",
                3.0 / f64::from(step)
            )
        })
        .collect();
    std::fs::write(run_dir.join("metrics.jsonl"), metrics).unwrap();
    std::fs::write(
        run_dir.join("run.json"),
        json!({"eval": {"baseline": {"wer": 0.25}, "candidate": {"wer": 0.125}}}).to_string(),
    )
    .unwrap();
    let _daemon = start_daemon(&config);
    wait_until("the HTTP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let first = speak(d, "first", "The first call of the morning.", "en-us");
    std::fs::copy(&first, inbox.join("first.wav")).unwrap();
    wait_until("the first transcript", || {
        d.join("out/first.json").is_file()
    });

    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{port}/"));
    wait_until("the dashboard to show the finished job", || {
        let recent = browser.text("recent-rows");
        recent.contains("first.wav") && recent.contains("done")
    });
    let queue = browser.text("queue");
    assert!(
        queue.contains("0 queued") && queue.contains("done 1"),
        "{queue}"
    );
    let datasets = browser.text("dataset-list");
    assert!(
        datasets.contains("calls") && datasets.contains("toward the next run"),
        "{datasets}"
    );
    // The dataset took the first file's speech in: its new hours are above zero.
    assert!(
        !datasets.contains("0.000 h of 1.00 h"),
        "no new hours shown: {datasets}"
    );
    assert!(browser.text("model").contains("ggml-tiny.en.bin"));
    let runs = browser.text("run-list");
    assert!(
        runs.contains(run) && runs.contains("WER 0.250 → 0.125"),
        "{runs}"
    );
    let curve = browser.run(
        "const l = document.querySelector('#run-list svg.loss polyline'); return l ? l.getAttribute('points') : '';",
    );
    let points = curve
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .count();
    assert!(points >= 20, "the loss curve has {points} points: {curve}");
    // The loss falls: its line starts high (small y in SVG) and ends low.
    let y = |p: &str| p.split(',').nth(1).unwrap().parse::<f64>().unwrap();
    let pairs: Vec<&str> = curve.as_str().unwrap().split_whitespace().collect();
    assert!(y(pairs[0]) < y(pairs[pairs.len() - 1]), "{curve}");
    // The outputs are links that fetch the files through the journal.
    let href = browser.run(
        "return document.querySelector('#recent-rows a[href$=\"/outputs/txt\"]').getAttribute('href')",
    );
    let (status, txt) = http_get(port, href.as_str().unwrap(), None);
    assert_eq!(status, 200);
    assert!(txt.to_lowercase().contains("morning"), "{txt}");
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        png.len()
    );
    eprintln!("dashboard screenshot: {}", shot.display());

    // Live: a second file appears without a reload.
    browser.run("window.sameLoad = 42; return null;");
    let second = speak(d, "second", "A second call after lunch.", "en-us");
    std::fs::copy(&second, inbox.join("second.wav")).unwrap();
    wait_until(
        "the dashboard to show the second job without a reload",
        || {
            let recent = browser.text("recent-rows");
            recent.contains("second.wav") && recent.matches("done").count() >= 2
        },
    );
    assert_eq!(browser.run("return window.sameLoad;"), 42);
    assert!(browser.text("queue").contains("done 2"));
}
