//! The held-out split: the inputs a run evaluates on and never trains on. It is chosen by
//! content (the input's sha256), so every piece of one recording is on the same side, an
//! input stays on its side run after run, and raising `eval_fraction` only moves inputs from
//! training to evaluation. Each run freezes its split as two files in its own folder.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use super::manifest::Line;

/// The held-out half of a run's frozen manifest, beside `manifest.jsonl` (the training half).
pub const EVAL_FILE_NAME: &str = "eval.jsonl";

/// Whether input `sha256` is held out at `fraction` (0: none, 0.5: about half).
pub fn held_out(sha256: &str, fraction: f64) -> bool {
    // A sha256 is uniform, so its first 64 bits place the input on [0, 1). A line without
    // one (written by hand) trains.
    let Some(head) = sha256
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
    else {
        return false;
    };
    (head as f64) / 2f64.powi(64) < fraction
}

/// What a split put on each side.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Sides {
    pub train_lines: usize,
    pub eval_lines: usize,
    pub eval_seconds: f64,
}

/// Copies manifest `from` into `train` and `eval`, each line byte for byte to its side. A
/// line that is not a manifest line goes to `train`, where the run's record reports it.
/// A missing manifest gives two empty files.
pub fn split(from: &Path, train: &Path, eval: &Path, fraction: f64) -> std::io::Result<Sides> {
    let mut to_train = BufWriter::new(File::create(train)?);
    let mut to_eval = BufWriter::new(File::create(eval)?);
    let mut sides = Sides::default();
    let reader = match File::open(from) {
        Ok(f) => Some(BufReader::new(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(mut reader) = reader {
        let mut raw = Vec::new();
        loop {
            raw.clear();
            if reader.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            let line = serde_json::from_slice::<Line>(raw.trim_ascii_end()).ok();
            let side = match line.filter(|l| held_out(&l.sha256, fraction)) {
                Some(l) => {
                    sides.eval_lines += 1;
                    sides.eval_seconds += l.duration;
                    &mut to_eval
                }
                None => {
                    sides.train_lines += usize::from(!raw.trim_ascii().is_empty());
                    &mut to_train
                }
            };
            side.write_all(&raw)?;
            // A last line without its newline must not run into a line after it.
            if !raw.ends_with(b"\n") {
                side.write_all(b"\n")?;
            }
        }
    }
    for mut w in [to_train, to_eval] {
        w.flush()?;
        w.get_ref().sync_all()?;
    }
    Ok(sides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn sha(n: u32) -> String {
        hex::encode(Sha256::digest(n.to_le_bytes()))
    }

    #[test]
    fn the_split_is_by_content_stable_and_nested() {
        let shas: Vec<String> = (0..10_000).map(sha).collect();
        let held = |f: f64| shas.iter().filter(|s| held_out(s, f)).count();
        assert_eq!(held(0.0), 0);
        let tenth = held(0.1);
        assert!((900..1100).contains(&tenth), "{tenth} of 10,000 at 0.1");
        // Raising the fraction only moves inputs into evaluation.
        for s in &shas {
            assert!(!held_out(s, 0.1) || held_out(s, 0.2));
            assert_eq!(held_out(s, 0.1), held_out(s, 0.1));
        }
        assert!(!held_out("by hand", 0.5));
    }

    #[test]
    fn a_manifest_splits_line_for_line_with_each_input_on_one_side() {
        let dir = tempfile::tempdir().unwrap();
        let (from, train, eval) = (
            dir.path().join("m.jsonl"),
            dir.path().join("train.jsonl"),
            dir.path().join("eval.jsonl"),
        );
        // Inputs 0..40, two pieces each, one bad line, and a last line without a newline.
        let mut text = String::new();
        for n in 0..40 {
            for piece in 0..2 {
                text.push_str(&format!(
                    "{{\"audio_filepath\":\"/a/{n}-{piece}.wav\",\"duration\":2.0,\"text\":\"x\",\"source\":\"s\",\"sha256\":\"{}\"}}\n",
                    sha(n)
                ));
            }
        }
        text.push_str("not json\n");
        text.push_str(&format!(
            "{{\"audio_filepath\":\"/a/last.wav\",\"duration\":1.0,\"text\":\"x\",\"source\":\"s\",\"sha256\":\"{}\"}}",
            sha(99)
        ));
        std::fs::write(&from, &text).unwrap();
        let sides = split(&from, &train, &eval, 0.25).unwrap();
        let (t, e) = (
            std::fs::read_to_string(&train).unwrap(),
            std::fs::read_to_string(&eval).unwrap(),
        );
        assert_eq!(
            (sides.train_lines, sides.eval_lines),
            (t.lines().count(), e.lines().count())
        );
        assert!(
            sides.eval_lines > 0 && sides.train_lines > sides.eval_lines,
            "{sides:?}"
        );
        assert_eq!(
            sides.eval_seconds,
            2.0 * sides.eval_lines as f64 - if held_out(&sha(99), 0.25) { 1.0 } else { 0.0 }
        );
        assert!(t.contains("not json\n"));
        let mut all: Vec<&str> = t.lines().chain(e.lines()).collect();
        let mut want: Vec<&str> = text.lines().collect();
        all.sort();
        want.sort();
        assert_eq!(all, want, "every line once, unchanged");
        for n in 0..40 {
            let (in_t, in_e) = (t.contains(&sha(n)), e.contains(&sha(n)));
            assert!(in_t != in_e, "input {n} on one side only");
            assert_eq!(in_e, held_out(&sha(n), 0.25));
        }
        // No manifest yet: two empty halves.
        let none = split(&dir.path().join("absent"), &train, &eval, 0.25).unwrap();
        assert_eq!(none, Sides::default());
        assert_eq!(std::fs::read(&train).unwrap(), b"");
    }
}
