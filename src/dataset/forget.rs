//! Taking a content out of a dataset when every input that brought it was deleted (by
//! retention's `keep_done`, or with its object in S3 under `on_removed =
//! "delete_outputs"`): its lines leave the manifest, so no future run trains or evaluates
//! on it, its audio pieces are deleted, and the journal moves its seconds off the ledger and
//! tells each input's story. Runs already made keep their frozen copies (`keep_runs` bounds
//! them). Replaying it changes nothing, so a crash anywhere in between is mended by the
//! next pass.

use std::sync::Mutex;

use super::feed::{io, lock, Dataset, DatasetError};
use super::manifest;
use super::s3_sync::files_starting;
use crate::journal::Journal;

impl Dataset {
    /// Takes content `sha256` out; returns how many manifest lines it had (0: none left).
    pub fn forget(&self, journal: &Mutex<Journal>, sha256: &str) -> Result<usize, DatasetError> {
        let _one_at_a_time = self.lock();
        let path = self.manifest();
        let lines = manifest::replace_input(&path, sha256, &[])?;
        if lines > 0 {
            self.manifest_dirty
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let dir = self.root.join("audio").join(&sha256[..sha256.len().min(2)]);
        for wav in files_starting(&dir, sha256) {
            match std::fs::remove_file(&wav) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &wav)(e)),
            }
        }
        lock(journal).dataset_forgot(&self.name, sha256, lines)?;
        Ok(lines)
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
        assert_eq!(d.forget(&journal, "aa11").unwrap(), 2);
        let left = manifest::read(&d.manifest()).unwrap().lines;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].sha256, "bb22");
        assert!(!d.root.join("audio/aa/aa11-0000.wav").exists());
        assert!(d.root.join("audio/bb/bb22-0000.wav").exists());
        let ledger = lock(&journal).ledger("d").unwrap();
        assert_eq!((ledger.total_seconds, ledger.new_seconds), (2.0, 2.0));
        assert!(!lock(&journal).dataset_holds("d", "aa11").unwrap());
        assert_eq!(
            lock(&journal).dataset_removed_unsynced("d").unwrap(),
            ["aa11"]
        );
        // Again: nothing more happens, and the ledger is not taken twice.
        assert_eq!(d.forget(&journal, "aa11").unwrap(), 0);
        assert_eq!(lock(&journal).ledger("d").unwrap().total_seconds, 2.0);
        // The same content may come back with a new upload.
        assert!(lock(&journal).dataset_begin("d", "aa11", 0, "x").unwrap());
    }
}
