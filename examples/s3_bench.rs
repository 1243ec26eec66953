//! S3/SQS benchmarks (issue 5) against the moto emulator, with a stub transcriber: the
//! source, journal, S3 reads and conditional writes are measured, not the model. Run by
//! `scripts/bench-s3.sh`.
//!
//! - `latency N`: N uploads one after another; time from the upload returning to the job
//!   starting (p50/p99).
//! - `throughput N`: N tiny objects uploaded at once, processed by 1 daemon and then by 3
//!   daemons on the same queue; objects/s and the ratio.
//! - `rss MB`: peak RSS of the daemon (this process) while it fetches and processes a 10 MB
//!   object, then one of MB megabytes (default 1024): the second must not raise the peak.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use common::{latencies, now_ms, percentile, wav, Stub};
use hotfolderd::config::Config;
use hotfolderd::journal::{Journal, State};

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Moto {
    let bin = std::env::var("HOTFOLDERD_MOTO_SERVER")
        .unwrap_or_else(|_| ".cache/moto-venv/bin/moto_server".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (run scripts/moto.sh)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto(child, port)
}

struct World {
    _moto: Moto,
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    queue_url: String,
}

/// Buckets, queue and notification, as in the tests. The daemons find the emulator through
/// the standard AWS environment variables, set here before any client exists.
fn world() -> World {
    let moto = start_moto();
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    // Set before any thread is started.
    std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    std::env::set_var("AWS_REGION", "us-east-1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (s3, queue_url) = rt.block_on(async {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(true)
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::new(&shared);
        for b in ["media", "results"] {
            s3.create_bucket().bucket(b).send().await.unwrap();
        }
        let q = sqs
            .create_queue()
            .queue_name("uploads")
            .send()
            .await
            .unwrap();
        let notify = NotificationConfiguration::builder()
            .queue_configurations(
                QueueConfiguration::builder()
                    .queue_arn("arn:aws:sqs:us-east-1:123456789012:uploads")
                    .events(Event::from("s3:ObjectCreated:*"))
                    .build()
                    .unwrap(),
            )
            .build();
        s3.put_bucket_notification_configuration()
            .bucket("media")
            .notification_configuration(notify)
            .send()
            .await
            .unwrap();
        (s3, q.queue_url.unwrap())
    });
    World {
        _moto: moto,
        rt,
        s3,
        queue_url,
    }
}

/// A daemon home with its own journal; the daemon runs on its own thread until stopped.
struct Daemon {
    home: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

fn start_daemon(w: &World, home: &Path) -> Daemon {
    start_daemon_sized(w, home, 64)
}

fn start_daemon_sized(w: &World, home: &Path, max_mb: u64) -> Daemon {
    std::fs::create_dir_all(home).unwrap();
    let text = format!(
        "[journal]\npath = {:?}\n[asr]\nmodel = \"stub\"\n[[s3]]\nqueue_url = {:?}\n\
         input_bucket = \"media\"\ninput_prefix = \"in/\"\noutput_bucket = \"results\"\n\
         output_prefix = \"out/\"\nformats = [\"txt\"]\nwait_time = \"1s\"\nforce_path_style = true\n\
         max_object_size = \"{max_mb}MiB\"\nvisibility_timeout = \"120s\"\n",
        home.join("journal.sqlite"),
        w.queue_url
    );
    let config = Config::parse(&text, "bench.toml", |k| std::env::var(k).ok()).unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
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
    Daemon {
        home: home.to_path_buf(),
        stop,
        thread,
    }
}

impl Daemon {
    fn finish(self) {
        let _ = self.stop.send(());
        self.thread.join().unwrap();
    }

    fn done(&self) -> usize {
        let path = self.home.join("journal.sqlite");
        if !path.exists() {
            return 0;
        }
        Journal::open(&path)
            .and_then(|j| j.counts())
            .map(|c| {
                c.into_iter()
                    .filter(|(s, _)| *s == State::Done)
                    .map(|(_, n)| n as usize)
                    .sum()
            })
            .unwrap_or(0)
    }
}

fn upload(w: &World, key: &str, bytes: Vec<u8>) {
    w.rt.block_on(async {
        w.s3.put_object()
            .bucket("media")
            .key(key)
            .content_type("audio/wav")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap();
    });
}

fn wait_done(daemons: &[&Daemon], n: usize) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while daemons.iter().map(|d| d.done()).sum::<usize>() < n {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn latency(base: &Path, n: usize) {
    let w = world();
    let d = start_daemon(&w, &base.join("latency"));
    std::thread::sleep(Duration::from_secs(1));
    let mut uploaded = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("in/lat/{i:04}.wav");
        upload(&w, &key, wav(i as u32));
        uploaded.push((key, now_ms()));
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_done(&[&d], n);
    let home = d.home.clone();
    d.finish();
    let lat = latencies(
        &Journal::open(&home.join("journal.sqlite")).unwrap(),
        &uploaded,
    );
    let p = |q: f64| percentile(&lat, q);
    println!(
        "s3 latency: {n} uploads, upload returned → job start: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 ≤ 1000 ms)",
        p(0.5),
        p(0.99),
        lat.last().unwrap()
    );
}

fn throughput(base: &Path, n: usize) {
    let mut rates = Vec::new();
    for daemons in [1usize, 3] {
        let w = world();
        let t_up = Instant::now();
        for i in 0..n {
            upload(&w, &format!("in/tp/{i:05}.wav"), wav(i as u32));
        }
        let upload_s = t_up.elapsed().as_secs_f64();
        let t = Instant::now();
        let ds: Vec<Daemon> = (0..daemons)
            .map(|k| start_daemon(&w, &base.join(format!("tp{daemons}-{k}"))))
            .collect();
        wait_done(&ds.iter().collect::<Vec<_>>(), n);
        let secs = t.elapsed().as_secs_f64();
        let per: Vec<usize> = ds.iter().map(Daemon::done).collect();
        for d in ds {
            d.finish();
        }
        let rate = n as f64 / secs;
        println!(
            "s3 throughput: {n} objects (uploaded in {upload_s:.1} s), {daemons} daemon(s): {secs:.1} s, {rate:.1} objects/s, jobs per daemon {per:?}"
        );
        rates.push(rate);
    }
    println!(
        "s3 throughput: 3 daemons / 1 daemon = {:.2}× (one emulator process on the same 2 cores serves them all)",
        rates[1] / rates[0]
    );
}

/// Peak resident memory of this process so far, in MB (`VmHWM`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// A WAV file of `bytes` bytes of 16 kHz mono silence, written in pieces.
fn big_wav(path: &Path, bytes: u64) {
    use std::io::Write;
    let data = (bytes - 44) as u32;
    let mut head = wav(0);
    head.truncate(44);
    head[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    head[40..44].copy_from_slice(&data.to_le_bytes());
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&head).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = u64::from(data);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
}

fn rss(base: &Path, mb: u64) {
    let w = world();
    std::fs::create_dir_all(base).unwrap();
    let d = start_daemon_sized(&w, &base.join("rss"), mb * 2);
    let mut peaks = Vec::new();
    for (i, size) in [10u64, mb].into_iter().enumerate() {
        let file = base.join(format!("{size}.wav"));
        big_wav(&file, size << 20);
        w.rt.block_on(async {
            w.s3.put_object()
                .bucket("media")
                .key(format!("in/rss/{size}.wav"))
                .content_type("audio/wav")
                .body(ByteStream::from_path(&file).await.unwrap())
                .send()
                .await
                .unwrap();
        });
        let _ = std::fs::remove_file(&file);
        wait_done(&[&d], i + 1);
        peaks.push(peak_rss_mb());
    }
    d.finish();
    println!(
        "s3 rss: peak RSS after a 10 MB object {:.0} MB, after a {mb} MB object {:.0} MB (+{:.0} MB; the object is never held in memory)",
        peaks[0],
        peaks[1],
        peaks[1] - peaks[0]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-s3"));
    let _ = std::fs::remove_dir_all(&base);
    let num = |default: usize| args.get(1).and_then(|v| v.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("latency") => latency(&base, num(200)),
        Some("throughput") => throughput(&base, num(1000)),
        Some("rss") => rss(&base, num(1024) as u64),
        _ => {
            eprintln!("usage: s3_bench latency [N] | throughput [N] | rss [MB]");
            std::process::exit(2);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}
