//! The antagonist: at random moments one fault at a time, each undone before the next —
//! `kill -9` and restart, the emulator killed and brought back with its state, the output
//! folder read-only, its disk full, SIGHUP with a changed config and with a broken one.
//! Faults come round in shuffled order, so even a short run meets each of them.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::{Rng, Soak, STABLE_FOR};
use crate::common::moto::Moto;
use crate::common::proxy::Proxy;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    Kill,
    Outage,
    ReadOnly,
    DiskFull,
    Reload,
    BrokenReload,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Kill,
        Fault::Outage,
        Fault::ReadOnly,
        Fault::DiskFull,
        Fault::Reload,
        Fault::BrokenReload,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Fault::Kill => "`kill -9` of the daemon, then a restart",
            Fault::Outage => "S3/SQS emulator killed, restarted with its state",
            Fault::ReadOnly => "output folder made read-only, then writable",
            Fault::DiskFull => "output disk (64 MiB tmpfs) filled, then freed",
            Fault::Reload => "SIGHUP with a changed, valid config",
            Fault::BrokenReload => "SIGHUP with a broken config, then fixed",
        }
    }
}

/// How often each fault was injected, in `Fault::ALL` order.
pub type Faults = Vec<(Fault, usize)>;

pub fn harass(soak: &Soak, moto: &mut Moto, proxy: &mut Proxy, mut rng: Rng) -> Faults {
    let kinds: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| *f != Fault::DiskFull || soak.tmpfs)
        .collect();
    let mut counts: Faults = kinds.iter().map(|f| (*f, 0)).collect();
    let mut round: Vec<Fault> = Vec::new();
    let mut reloads = 0;
    while soak.nap(rng.between(3_000, 8_000)) {
        soak.check_alive();
        if round.is_empty() {
            round = kinds.clone();
            for i in (1..round.len()).rev() {
                round.swap(i, rng.between(0, i as u64 + 1) as usize);
            }
        }
        let fault = round.pop().unwrap();
        let hold = rng.between(3_000, 10_000);
        eprintln!("soak: {fault:?} for {hold} ms");
        match fault {
            Fault::Kill => {
                soak.signal("KILL");
                std::thread::sleep(std::time::Duration::from_millis(hold / 5));
                soak.start_daemon();
            }
            Fault::Outage => {
                let _closed = soak.s3_gate.write().unwrap();
                moto.kill();
                std::thread::sleep(std::time::Duration::from_millis(hold));
                proxy.cut();
                moto.restart();
                proxy.restore();
            }
            Fault::ReadOnly => {
                set_mode(&soak.out, 0o555);
                std::thread::sleep(std::time::Duration::from_millis(hold));
                set_mode(&soak.out, 0o755);
            }
            Fault::DiskFull => {
                let ballast = soak.out.join(".soak-ballast");
                fill(&ballast);
                std::thread::sleep(std::time::Duration::from_millis(hold));
                std::fs::remove_file(&ballast).unwrap();
            }
            Fault::Reload => {
                reloads += 1;
                soak.write_config(if reloads % 2 == 1 { "4s" } else { STABLE_FOR });
                soak.signal("HUP");
            }
            Fault::BrokenReload => {
                std::fs::write(&soak.config, "[[watch]\npath = 'no closing bracket").unwrap();
                soak.signal("HUP");
                std::thread::sleep(std::time::Duration::from_millis(hold.min(3_000)));
                soak.check_alive();
                soak.write_config(STABLE_FOR);
                soak.signal("HUP");
            }
        }
        if let Some(c) = counts.iter_mut().find(|(f, _)| *f == fault) {
            c.1 += 1;
        }
    }
    counts
}

fn set_mode(p: &std::path::Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes `path` until the disk refuses another byte.
fn fill(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    let small = vec![0x5au8; 4096];
    while f.write_all(&small).is_ok() {}
}
