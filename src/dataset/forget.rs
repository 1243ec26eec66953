//! Taking a content out of a dataset when every input that brought it was deleted (by
//! retention's `keep_done`, or with its object in S3 under `on_removed =
//! "delete_outputs"`): its lines leave the manifest, so no future run trains or evaluates
//! on it, its audio pieces are deleted, and the journal moves its seconds off the ledger and
//! tells each input's story. Runs already made keep their frozen copies (`keep_runs` bounds
//! them). Replaying it changes nothing, so a crash anywhere in between is mended by the
//! next pass.

use std::collections::HashSet;
use std::sync::Mutex;

use super::feed::{io, lock, Dataset, DatasetError};
use super::manifest;
use super::s3_sync::files_starting;
use crate::journal::{Journal, RunState};

/// What one call did.
#[derive(Debug, PartialEq)]
pub enum Forgot {
    /// Each content taken out, with how many manifest lines it had (0: none were left).
    Done(Vec<(String, usize)>),
    /// A run of this dataset is running: its frozen manifests point at the dataset's audio,
    /// and its hours at the ledger. The next pass does it.
    Deferred,
}

impl Dataset {
    /// Takes the contents `sha256s` out, in one rewrite of the manifest.
    pub fn forget(
        &self,
        journal: &Mutex<Journal>,
        sha256s: &[String],
    ) -> Result<Forgot, DatasetError> {
        // Under the dataset's lock, which a run's start takes to freeze its manifests: a run
        // either started before (and is seen running here) or freezes what is left after.
        let _one_at_a_time = self.lock();
        let running = lock(journal)
            .runs(Some(&self.name))?
            .iter()
            .any(|r| r.state == RunState::Running);
        if running {
            return Ok(Forgot::Deferred);
        }
        let path = self.manifest();
        let set: HashSet<String> = sha256s.iter().cloned().collect();
        let lines = manifest::remove_inputs(&path, &set)?;
        if !lines.is_empty() {
            self.manifest_dirty
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut done = Vec::with_capacity(sha256s.len());
        for sha256 in sha256s {
            let dir = self.root.join("audio").join(&sha256[..sha256.len().min(2)]);
            for wav in files_starting(&dir, sha256) {
                match std::fs::remove_file(&wav) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("remove", &wav)(e)),
                }
            }
            let n = lines.get(sha256).copied().unwrap_or(0);
            lock(journal).dataset_forgot(&self.name, sha256, n)?;
            done.push((sha256.clone(), n));
        }
        Ok(Forgot::Done(done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::manifest::Line;

    fn line(sha: &str, i: usize) -> Line {
        Line {
            audio_filepath: format!("audio/{}/{sha}-{i:04}.wav", &sha[..2]),
            duration: 2.0,
            text: "words".into(),
            offset: None,
            source: "x".into(),
            sha256: sha.into(),
            label: None,
            model_sha256: None,
            avg_logprob: None,
            no_speech_prob: None,
            compression_ratio: None,
            source_start: None,
            source_end: None,
            ..Line::default()
        }
    }

    #[test]
    fn a_forgotten_content_leaves_the_manifest_the_audio_and_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::dataset::feed::test_dataset(dir.path(), "");
        let journal = Mutex::new(Journal::open(&dir.path().join("j.sqlite")).unwrap());
        let lines = [line("aa11", 0), line("aa11", 1), line("bb22", 0)];
        std::fs::create_dir_all(&d.root).unwrap();
        manifest::append_at(&d.manifest(), 0, &lines).unwrap();
        for l in &lines {
            let wav = d.root.join(&l.audio_filepath);
            std::fs::create_dir_all(wav.parent().unwrap()).unwrap();
            std::fs::write(&wav, "RIFF").unwrap();
        }
        for (sha, secs) in [("aa11", 4.0), ("bb22", 2.0)] {
            lock(&journal).dataset_begin("d", sha, 0, "x").unwrap();
            lock(&journal).dataset_added("d", sha, secs, 1).unwrap();
        }
        let aa = vec!["aa11".to_string()];
        assert_eq!(
            d.forget(&journal, &aa).unwrap(),
            Forgot::Done(vec![("aa11".into(), 2)])
        );
        let left = manifest::read(&d.manifest()).unwrap().lines;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].sha256, "bb22");
        assert!(!d.root.join("audio/aa/aa11-0000.wav").exists());
        assert!(d.root.join("audio/bb/bb22-0000.wav").exists());
        let ledger = lock(&journal).ledger("d").unwrap();
        assert_eq!((ledger.total_seconds, ledger.new_seconds), (2.0, 2.0));
        assert!(!lock(&journal).dataset_holds("d", "aa11").unwrap());
        assert_eq!(
            lock(&journal).dataset_unsynced("d", true).unwrap(),
            ["aa11"]
        );
        // Again: nothing more happens, and the ledger is not taken twice.
        assert_eq!(
            d.forget(&journal, &aa).unwrap(),
            Forgot::Done(vec![("aa11".into(), 0)])
        );
        assert_eq!(lock(&journal).ledger("d").unwrap().total_seconds, 2.0);
        // The same content may come back with a new upload.
        assert!(lock(&journal).dataset_begin("d", "aa11", 0, "x").unwrap());
        // While a run of the dataset runs, nothing is taken out.
        lock(&journal).run_start("r1", "d", 2.0).unwrap();
        let bb = vec!["bb22".to_string()];
        assert_eq!(d.forget(&journal, &bb).unwrap(), Forgot::Deferred);
        assert_eq!(manifest::read(&d.manifest()).unwrap().lines.len(), 1);
        lock(&journal).run_end("r1", RunState::Failed, "x").unwrap();
        assert_eq!(
            d.forget(&journal, &bb).unwrap(),
            Forgot::Done(vec![("bb22".into(), 1)])
        );
    }
}
