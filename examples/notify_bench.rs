//! Notification benchmarks (issue 8): the real daemon (stub transcriber) delivering to a
//! webhook receiver in this process. Run by `scripts/bench-notify.sh`.
//!
//! - `latency N`: files dropped one at a time, receiver up: time from the input's `done`
//!   (journal) to the receiver reading the request, p50/p99, against the sender's poll
//!   interval (500 ms) as the baseline.
//! - `drain N`: N files finish while the receiver is down; then it comes up: notifications/s
//!   until all N arrived, against N signed POSTs sent back to back by a plain HTTP client to
//!   the same receiver (what the network path alone allows).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{now_ms, percentile, wav, Stub};
use hotfolderd::config::Config;
use hotfolderd::journal::{Journal, State};

/// Receives POSTs; records (unix ms, delivery key, body).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<(f64, String, String)>>>,
    open: Arc<AtomicBool>,
}

impl Receiver {
    fn start(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicBool::new(true));
        let (g, o) = (got.clone(), open.clone());
        std::thread::spawn(move || {
            while o.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let g = g.clone();
                        std::thread::spawn(move || serve(s, &g));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Receiver { port, got, open }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.open.store(false, Ordering::SeqCst);
    }
}

/// Serves requests on one connection (keep-alive) until it closes.
fn serve(s: std::net::TcpStream, got: &Mutex<Vec<(f64, String, String)>>) {
    s.set_nonblocking(false).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut len, mut key) = (0usize, String::new());
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap(),
                "x-hotfolderd-delivery" => key = v.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        got.lock()
            .unwrap()
            .push((now_ms(), key, String::from_utf8(body).unwrap()));
        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

struct Bench {
    dir: PathBuf,
    config: PathBuf,
}

impl Bench {
    fn new(base: &Path, name: &str, port: u16) -> Bench {
        let dir = base.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("inbox")).unwrap();
        std::fs::write(dir.join("secret"), "bench-secret").unwrap();
        let config = dir.join("hotfolderd.toml");
        std::fs::write(
            &config,
            format!(
                "[journal]\npath = {:?}\n[asr]\nmodel = \"stub\"\n[[watch]]\npath = {:?}\noutput = {:?}\n\
                 stable_for = \"100ms\"\nafter = \"keep\"\nformats = [\"txt\"]\n\
                 [[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = {:?}\n\
                 events = [\"done\"]\nmax_backoff = \"1s\"\nmax_attempts = 1000\n",
                dir.join("journal.sqlite"),
                dir.join("inbox"),
                dir.join("out"),
                dir.join("secret"),
            ),
        )
        .unwrap();
        Bench { dir, config }
    }

    fn start(
        &self,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let config = Config::load(&self.config).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(hotfolderd::daemon::run_with(
                config,
                Arc::new(Stub),
                async {
                    let _ = rx.await;
                },
            ))
            .unwrap();
        });
        (tx, handle)
    }

    fn journal(&self) -> Journal {
        Journal::open(&self.dir.join("journal.sqlite")).unwrap()
    }

    fn drop_file(&self, i: u32) {
        let tmp = self.dir.join(format!("f{i}.part"));
        std::fs::write(&tmp, wav(i)).unwrap();
        std::fs::rename(&tmp, self.dir.join(format!("inbox/f{i}.wav"))).unwrap();
    }

    /// unix ms of each done input's `done` event, by key.
    fn done_at(&self) -> std::collections::HashMap<String, f64> {
        let j = self.journal();
        j.in_state(State::Done)
            .unwrap()
            .into_iter()
            .map(|id| {
                let key = j.get(id).unwrap().unwrap().key;
                let at = j
                    .history(id)
                    .unwrap()
                    .into_iter()
                    .find(|e| e.1 == "done")
                    .unwrap()
                    .0;
                (key, at as f64)
            })
            .collect()
    }
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(600), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn latency(base: &Path, n: u32) {
    let rx = Receiver::start(0);
    let b = Bench::new(base, "latency", rx.port);
    let (stop, h) = b.start();
    for i in 0..n {
        b.drop_file(i);
        wait("a notification", || rx.count() as u32 > i);
    }
    let _ = stop.send(());
    h.join().unwrap();
    let done = b.done_at();
    let mut lat: Vec<f64> = rx
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(at, _, body)| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            let key = v["source"]["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            at - done[&key]
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "latency, {n} files: done → received p50 {p50:.0} ms, p99 {p99:.0} ms, max {:.0} ms; \
         p50 / poll interval (500 ms) = {:.2}",
        lat[lat.len() - 1],
        p50 / 500.0
    );
}

fn drain(base: &Path, n: u32) {
    // The receiver's port is chosen now and opened later.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = Bench::new(base, "drain", port);
    let (stop, h) = b.start();
    for i in 0..n {
        b.drop_file(i);
    }
    wait("all inputs done", || {
        b.journal()
            .counts()
            .unwrap()
            .iter()
            .any(|c| c.0 == State::Done && c.1 == i64::from(n))
    });
    let t = Instant::now();
    let rx = Receiver::start(port);
    wait("every notification", || rx.count() as u32 >= n);
    let took = t.elapsed().as_secs_f64();
    let _ = stop.send(());
    h.join().unwrap();
    let keys: std::collections::HashSet<String> =
        rx.got.lock().unwrap().iter().map(|r| r.1.clone()).collect();
    assert_eq!(
        keys.len() as u32,
        n,
        "a key arrived twice or one is missing"
    );
    drop(rx);

    // Baseline: the same number of signed POSTs back to back, no journal.
    let rx = Receiver::start(0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/hook", rx.port);
        let t = Instant::now();
        for i in 0..n {
            let body = format!("{{\"n\":{i}}}");
            let sig = hotfolderd::notify::webhook::signature(b"bench-secret", body.as_bytes());
            client
                .post(&url)
                .header("X-Hotfolderd-Signature", sig)
                .header("X-Hotfolderd-Delivery", i.to_string())
                .body(body)
                .send()
                .await
                .unwrap();
        }
        t.elapsed().as_secs_f64()
    });
    let (rate, raw) = (f64::from(n) / took, f64::from(n) / body);
    println!(
        "drain, {n} notifications queued while the receiver was down: {rate:.0}/s \
         ({took:.2} s); plain POSTs back to back {raw:.0}/s; ratio {:.2}",
        rate / raw
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base =
        PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target/bench-notify".into()));
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    match args.get(1).map(String::as_str) {
        Some("latency") => latency(&base, n),
        Some("drain") => drain(&base, n),
        _ => eprintln!("usage: notify_bench latency|drain N"),
    }
}
