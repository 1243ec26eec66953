//! The fault-injection soak: the real daemon (as a service account when the tests run as
//! root) serves a watched folder and the S3/SQS emulator while a driver drops files and
//! uploads objects — speech, duplicates, slow writers, renames, garbage — and an antagonist
//! at random moments `kill -9`s the daemon, takes the emulator down, makes the output folder
//! read-only, fills its disk (a small tmpfs, when root) and reloads a valid and a broken
//! config. Then every input is reconciled against the journal, the audit log, the outputs
//! and the queue; the table is printed and any discrepancy fails the test.
//!
//! Two minutes by default (CI). `scripts/soak.sh SECONDS` runs it longer and writes the
//! table for docs/RELIABILITY.md. Env: HOTFOLDERD_SOAK_SECS, HOTFOLDERD_SOAK_SEED,
//! HOTFOLDERD_SOAK_GAP_MS (mean ms between drops), HOTFOLDERD_SOAK_REPORT (a file for the
//! table).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod antagonist;
mod driver;
mod reconcile;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::common::moto::{recorded_world, World};
use crate::common::proxy::Proxy;
use crate::common::*;

/// A fixed-sequence generator, so a run's choices can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    /// Uniform in `lo..hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Origin {
    Folder,
    Bucket,
}

/// One input the driver handed to the daemon.
#[derive(Clone, Debug)]
pub struct Dropped {
    pub origin: Origin,
    /// The file name in the inbox, or the object key under `in/`.
    pub name: String,
    pub sha256: String,
    /// Speech that must be transcribed; otherwise garbage that must be quarantined.
    pub good: bool,
    pub how: &'static str,
}

/// What the driver, the antagonist and the checks share.
pub struct Soak {
    pub dir: PathBuf,
    pub inbox: PathBuf,
    pub out: PathBuf,
    pub config: PathBuf,
    /// The valid config, `{stable_for}` to be filled in.
    config_template: String,
    env: Vec<(String, String)>,
    daemon: Mutex<Option<Daemon>>,
    starts: AtomicUsize,
    /// The output folder is a small tmpfs the antagonist may fill.
    pub tmpfs: bool,
    /// Run the daemon as `nobody`, so that permissions apply to it.
    as_nobody: bool,
    pub stop: AtomicBool,
    /// Uploads hold it shared; an outage holds it exclusively, so no upload straddles one.
    pub s3_gate: RwLock<()>,
    pub ledger: Mutex<Vec<Dropped>>,
    /// Mean time between two drops.
    pub gap_ms: u64,
    /// The daemon exited without being told to.
    pub unexpected_exits: AtomicUsize,
}

pub const STABLE_FOR: &str = "3s";

impl Soak {
    pub fn write_config(&self, stable_for: &str) {
        std::fs::write(
            &self.config,
            self.config_template.replace("{stable_for}", stable_for),
        )
        .unwrap();
    }

    pub fn start_daemon(&self) {
        let n = self.starts.fetch_add(1, Ordering::SeqCst);
        let log = self.dir.join(format!("daemon-{n}.log"));
        let daemon = start_daemon_with(
            &self.config,
            Start {
                log: Some(&log),
                env: self.env.clone(),
                as_nobody: self.as_nobody,
                ..Start::default()
            },
        );
        *self.daemon.lock().unwrap() = Some(daemon);
    }

    /// Sends `signal`; other than HUP, also waits for the exit and returns its status.
    pub fn signal(&self, signal: &str) -> Option<std::process::ExitStatus> {
        let mut guard = self.daemon.lock().unwrap();
        let d = guard.as_mut()?;
        run(Command::new("kill").args([&format!("-{signal}"), &d.child.id().to_string()]));
        if signal == "HUP" {
            return None;
        }
        let status = d.child.wait().unwrap();
        *guard = None;
        Some(status)
    }

    /// Restarts the daemon if it died on its own (and counts it).
    pub fn check_alive(&self) {
        let died = {
            let mut guard = self.daemon.lock().unwrap();
            match guard.as_mut().map(|d| d.child.try_wait().unwrap()) {
                Some(Some(status)) => {
                    eprintln!("soak: the daemon exited on its own: {status}");
                    *guard = None;
                    true
                }
                _ => false,
            }
        };
        if died {
            self.unexpected_exits.fetch_add(1, Ordering::SeqCst);
            self.start_daemon();
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `ms`, waking early when the soak is stopping; false if it is.
    pub fn nap(&self, ms: u64) -> bool {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        !self.stopping()
    }

    pub fn record(&self, d: Dropped) {
        self.ledger.lock().unwrap().push(d);
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Unmounts the tmpfs when the soak ends, passed or not.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn config_template(d: &Path, queue_url: &str, tmpfs: bool) -> String {
    let floor = if tmpfs {
        "[daemon]\nmin_free_disk = \"1MiB\"\n"
    } else {
        ""
    };
    format!(
        "{floor}[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n\
         [[watch]]\npath = {:?}\noutput = {:?}\nstable_for = \"{{stable_for}}\"\nafter = \"move\"\n\
         [[s3]]\nqueue_url = {queue_url:?}\ninput_bucket = \"media\"\ninput_prefix = \"in/\"\n\
         output_bucket = \"results\"\noutput_prefix = \"transcripts/\"\nwait_time = \"1s\"\n\
         visibility_timeout = \"30s\"\nforce_path_style = true\nmax_object_size = \"10MB\"\n",
        d.join("state/journal.sqlite"),
        model("tiny.en"),
        d.join("inbox"),
        d.join("out"),
    )
}

#[test]
fn soak_under_faults_accounts_for_every_input_once() {
    let secs = env_u64("HOTFOLDERD_SOAK_SECS").unwrap_or(120);
    let seed = env_u64("HOTFOLDERD_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    });
    // One drop every 4 s on average: about what one worker with tiny.en on one thread of a
    // busy 2-core machine keeps up with (~8 s per unique speech file; copies, garbage and
    // duplicates cost little).
    let gap_ms = env_u64("HOTFOLDERD_SOAK_GAP_MS").unwrap_or(4_000).max(2);
    eprintln!("soak: {secs} s, seed {seed} (HOTFOLDERD_SOAK_SEED={seed} replays the choices)");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (inbox, out) = (d.join("inbox"), d.join("out"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let root = is_root();
    let _mounted = root.then(|| {
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&out));
        Mounted(out.clone())
    });
    let voices = driver::Voices::make(d);

    let w = recorded_world(&d.join("moto-recording.jsonl"));
    let World {
        mut moto,
        rt,
        s3,
        sqs,
        queue_url,
    } = w;
    // The daemon reaches the emulator through a proxy, so that it cannot see it
    // half-restored while its state is replayed after an outage.
    let mut proxy = Proxy::start(moto.port);
    let soak = Soak {
        dir: d.to_path_buf(),
        inbox,
        out,
        config: d.join("hotfolderd.toml"),
        config_template: config_template(d, &queue_url, root),
        env: moto.env_at(proxy.port),
        daemon: Mutex::new(None),
        starts: AtomicUsize::new(0),
        tmpfs: root,
        as_nobody: root,
        stop: AtomicBool::new(false),
        s3_gate: RwLock::new(()),
        ledger: Mutex::new(Vec::new()),
        gap_ms,
        unexpected_exits: AtomicUsize::new(0),
    };
    soak.write_config(STABLE_FOR);
    if root {
        run(Command::new("chown").args(["-R", "65534:65534"]).arg(d));
    }
    soak.start_daemon();

    let started = Instant::now();
    let faults = std::thread::scope(|scope| {
        let driver = scope.spawn(|| {
            driver::drive(&soak, &voices, &s3, &rt, Rng::new(seed));
        });
        let antagonist =
            scope.spawn(|| antagonist::harass(&soak, &mut moto, &mut proxy, Rng::new(seed ^ 1)));
        while started.elapsed() < Duration::from_secs(secs)
            && !driver.is_finished()
            && !antagonist.is_finished()
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        soak.stop.store(true, Ordering::SeqCst);
        driver.join().unwrap();
        antagonist.join().unwrap()
    });
    soak.check_alive();
    let w = World {
        moto,
        rt,
        s3,
        sqs,
        queue_url,
    };
    // Ten minutes without an input becoming final is a stuck daemon, not a slow one.
    let settled = reconcile::settle(&soak, &w, Duration::from_secs(600));
    let exit = soak.signal("TERM");
    let report = reconcile::reconcile(&soak, &w, faults, secs, seed, settled, exit);
    let table = report.markdown();
    println!("{table}");
    if let Some(path) = std::env::var_os("HOTFOLDERD_SOAK_REPORT") {
        std::fs::write(path, &table).unwrap();
    }
    if !report.problems.is_empty() {
        // The daemon's logs and the journal, for whoever reads the failure.
        let kept = dir.keep();
        eprintln!("soak: logs, journal and inbox kept in {}", kept.display());
    }
    assert!(
        report.problems.is_empty(),
        "{} discrepancies:\n{}",
        report.problems.len(),
        report.problems.join("\n")
    );
}
