//! The driver: what users do to the daemon. Every few hundred milliseconds it drops a file
//! into the inbox or uploads an object — unique speech (each file's bytes differ), a copy
//! of earlier content under a new name, a slow writer, a rename from `.part`, random bytes
//! or text named `.wav` — and records each in the ledger.

use std::io::Write;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use super::{Dropped, Origin, Rng, Soak};
use crate::common::speak;

const SENTENCES: [&str; 6] = [
    "The delivery arrives on Tuesday morning.",
    "Please call the office before noon.",
    "A short note about the budget meeting.",
    "The weather will be cold and windy.",
    "Remember to water the plants in the hall.",
    "Our train leaves from platform nine.",
];

/// Speech made once; each drop is one of these with a unique tail.
pub struct Voices(Vec<Vec<u8>>);

impl Voices {
    pub fn make(d: &std::path::Path) -> Voices {
        Voices(
            SENTENCES
                .iter()
                .enumerate()
                .map(|(i, s)| std::fs::read(speak(d, &format!("voice{i}"), s, "en-us")).unwrap())
                .collect(),
        )
    }

    /// Sentence `n % 6` followed by 10 ms of near-silence whose first samples spell `n`:
    /// inaudible, but no two drops share their bytes (so none is deduplicated by accident).
    fn unique(&self, n: u64) -> Vec<u8> {
        let base = &self.0[(n % self.0.len() as u64) as usize];
        let data = base
            .windows(4)
            .position(|w| w == b"data")
            .expect("a wav data chunk");
        let mut tail = vec![0u8; 320];
        for (i, b) in n.to_le_bytes().into_iter().enumerate() {
            tail[2 * i] = b; // one byte per 16-bit sample: at most 255 of 32767
        }
        let mut wav = base.clone();
        wav.extend_from_slice(&tail);
        let riff = (wav.len() - 8) as u32;
        wav[4..8].copy_from_slice(&riff.to_le_bytes());
        let len = u32::from_le_bytes(wav[data + 4..data + 8].try_into().unwrap()) + 320;
        wav[data + 4..data + 8].copy_from_slice(&len.to_le_bytes());
        wav
    }
}

fn garbage(rng: &mut Rng) -> Vec<u8> {
    let n = rng.between(2_000, 65_000) as usize;
    rng.bytes(n)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs until the soak stops; slow writers still writing are waited for.
pub fn drive(
    soak: &Soak,
    voices: &Voices,
    s3: &aws_sdk_s3::Client,
    rt: &tokio::runtime::Runtime,
    mut rng: Rng,
) {
    let mut n: u64 = 0;
    let mut good: Vec<Vec<u8>> = Vec::new();
    std::thread::scope(|slow| {
        while soak.nap(rng.between(soak.gap_ms / 2, soak.gap_ms * 3 / 2)) {
            n += 1;
            let roll = rng.between(0, 100);
            // The bucket's share; a folder drop instead while the emulator is down.
            if roll >= 65 {
                if let Ok(_open) = soak.s3_gate.try_read() {
                    let (bytes, good_one, how) = match roll {
                        65..=84 => (voices.unique(n), true, "speech"),
                        85..=92 if !good.is_empty() => {
                            let i = rng.between(0, good.len() as u64) as usize;
                            (good[i].clone(), true, "duplicate")
                        }
                        _ => (garbage(&mut rng), false, "garbage"),
                    };
                    let key = format!("soak/u{n}.wav");
                    upload(s3, rt, &format!("in/{key}"), &bytes);
                    soak.record(Dropped {
                        origin: Origin::Bucket,
                        name: key,
                        sha256: sha(&bytes),
                        good: good_one,
                        how,
                    });
                    if good_one {
                        good.push(bytes);
                    }
                    continue;
                }
            }
            let name = format!("f{n}.wav");
            let path = soak.inbox.join(&name);
            let (bytes, good_one, how) = match roll % 65 {
                0..=29 => (voices.unique(n), true, "speech"),
                30..=39 => (voices.unique(n), true, "renamed"),
                40..=47 => (voices.unique(n), true, "slow writer"),
                48..=55 if !good.is_empty() => {
                    let i = rng.between(0, good.len() as u64) as usize;
                    (good[i].clone(), true, "duplicate")
                }
                56..=60 => (
                    b"Minutes of the meeting: nothing to report.\n".repeat(40),
                    false,
                    "text",
                ),
                _ => (garbage(&mut rng), false, "garbage"),
            };
            soak.record(Dropped {
                origin: Origin::Folder,
                name: name.clone(),
                sha256: sha(&bytes),
                good: good_one,
                how,
            });
            match how {
                "renamed" => {
                    let part = soak.inbox.join(format!("{name}.part"));
                    std::fs::write(&part, &bytes).unwrap();
                    std::fs::rename(&part, &path).unwrap();
                }
                "slow writer" => {
                    // Pauses well under `stable_for`: the file must not be taken half-written.
                    let pause = Duration::from_millis(rng.between(100, 400));
                    let content = bytes.clone();
                    slow.spawn(move || {
                        let mut f = std::fs::File::create(&path).unwrap();
                        for chunk in content.chunks(content.len() / 6 + 1) {
                            f.write_all(chunk).unwrap();
                            f.flush().unwrap();
                            std::thread::sleep(pause);
                        }
                    });
                }
                _ => std::fs::write(&path, &bytes).unwrap(),
            }
            if good_one {
                good.push(bytes);
            }
        }
    });
}

/// One upload, retried: the gate keeps outages out, but the emulator may still be slow.
fn upload(s3: &aws_sdk_s3::Client, rt: &tokio::runtime::Runtime, key: &str, bytes: &[u8]) {
    let mut last = None;
    for _ in 0..5 {
        let put = rt.block_on(
            s3.put_object()
                .bucket("media")
                .key(key)
                .content_type("audio/wav")
                .body(ByteStream::from(bytes.to_vec()))
                .send(),
        );
        match put {
            Ok(_) => return,
            Err(e) => last = Some(format!("{e:?}")),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("upload of {key} failed: {last:?}");
}
