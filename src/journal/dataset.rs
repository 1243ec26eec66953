//! The datasets' side of the journal: which inputs each dataset holds (by content), the
//! hours ledger, and training runs. An input's manifest append is bracketed by
//! `dataset_begin` (records where the append starts) and `dataset_added` (counts its
//! hours), so a crash in between is undone at start-up by truncating the manifest there.

use rusqlite::{params, OptionalExtension};

use super::{begin, db_error, now_ms, record_event, Journal, JournalError};

/// A dataset's hours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub total_seconds: f64,
    /// Added since the last successful training run started.
    pub new_seconds: f64,
    pub last_run_start: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    /// The daemon stopped or died while it ran.
    Interrupted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }
    fn parse(s: &str) -> RunState {
        match s {
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "interrupted" => RunState::Interrupted,
            _ => RunState::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub dataset: String,
    pub state: RunState,
    /// The dataset's new seconds when it started (taken off the ledger if it succeeds).
    pub seconds: f64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub pid: Option<i64>,
    pub detail: Option<String>,
}

/// A person's transcript that replaced the machine labels of one input in a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrected {
    pub dataset: String,
    /// The input's content.
    pub sha256: String,
    /// The correction file's name, and its content.
    pub file: String,
    pub file_sha256: String,
    /// The input's pieces and seconds in the dataset after the correction.
    pub pieces: usize,
    pub seconds: f64,
    /// Cues over audio the dataset did not keep.
    pub unused_cues: usize,
    pub at: i64,
}

impl Journal {
    /// Records a correction applied to the manifest, and moves the input's seconds in the
    /// ledger to what its corrected pieces hold, in one transaction.
    pub fn dataset_corrected(&mut self, c: &Corrected) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        let before: f64 = tx
            .query_row(
                "SELECT seconds FROM dataset_inputs WHERE dataset = ?1 AND sha256 = ?2",
                params![c.dataset, c.sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(&db)?
            .unwrap_or(c.seconds);
        let delta = c.seconds - before;
        tx.execute(
            "UPDATE dataset_inputs SET seconds = ?3, segments = ?4 WHERE dataset = ?1 AND sha256 = ?2",
            params![c.dataset, c.sha256, c.seconds, c.pieces as i64],
        )
        .map_err(&db)?;
        tx.execute(
            "UPDATE datasets SET total_seconds = MAX(0, total_seconds + ?2),
                                 new_seconds = MAX(0, new_seconds + ?2) WHERE name = ?1",
            params![c.dataset, delta],
        )
        .map_err(&db)?;
        // A replay after a crash (the file was not yet in done/) is recorded once: the newest
        // correction of this input already is this file.
        let newest: Option<String> = tx
            .query_row(
                "SELECT file_sha256 FROM dataset_corrections WHERE dataset = ?1 AND sha256 = ?2
                 ORDER BY id DESC LIMIT 1",
                params![c.dataset, c.sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(&db)?;
        if newest.as_deref() == Some(c.file_sha256.as_str()) {
            return tx.commit().map_err(&db);
        }
        tx.execute(
            "INSERT INTO dataset_corrections
                 (dataset, sha256, file, file_sha256, pieces, seconds, unused_cues, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                c.dataset,
                c.sha256,
                c.file,
                c.file_sha256,
                c.pieces as i64,
                c.seconds,
                c.unused_cues as i64,
                c.at
            ],
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)
    }

    /// The corrections applied to input `sha256`, oldest first.
    pub fn corrections_of(&self, sha256: &str) -> Result<Vec<Corrected>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT dataset, sha256, file, file_sha256, pieces, seconds, unused_cues, at
                 FROM dataset_corrections WHERE sha256 = ?1 ORDER BY id",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![sha256], |r| {
                Ok(Corrected {
                    dataset: r.get(0)?,
                    sha256: r.get(1)?,
                    file: r.get(2)?,
                    file_sha256: r.get(3)?,
                    pieces: r.get::<_, i64>(4)? as usize,
                    seconds: r.get(5)?,
                    unused_cues: r.get::<_, i64>(6)? as usize,
                    at: r.get(7)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Whether input `sha256` is in `dataset` (its append finished).
    pub fn dataset_holds(&self, dataset: &str, sha256: &str) -> Result<bool, JournalError> {
        let state: Option<String> = self
            .conn
            .query_row(
                "SELECT state FROM dataset_inputs WHERE dataset = ?1 AND sha256 = ?2",
                params![dataset, sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        Ok(state.as_deref() == Some("added"))
    }

    /// Before appending input `sha256`'s lines to `dataset`'s manifest at byte `offset`:
    /// `false` when that content is already in the dataset (skip it).
    pub fn dataset_begin(
        &mut self,
        dataset: &str,
        sha256: &str,
        offset: u64,
        source: &str,
    ) -> Result<bool, JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        let state: Option<String> = tx
            .query_row(
                "SELECT state FROM dataset_inputs WHERE dataset = ?1 AND sha256 = ?2",
                params![dataset, sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(&db)?;
        if state.as_deref() == Some("added") {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR REPLACE INTO dataset_inputs (dataset, sha256, state, manifest_offset, source, at)
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5)",
            params![dataset, sha256, offset as i64, source, now_ms()],
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(true)
    }

    /// The append is durable: count its seconds, in one transaction.
    pub fn dataset_added(
        &mut self,
        dataset: &str,
        sha256: &str,
        seconds: f64,
        segments: usize,
    ) -> Result<Ledger, JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        tx.execute(
            "UPDATE dataset_inputs SET state = 'added', seconds = ?3, segments = ?4
             WHERE dataset = ?1 AND sha256 = ?2",
            params![dataset, sha256, seconds, segments as i64],
        )
        .map_err(&db)?;
        tx.execute(
            "INSERT INTO datasets (name, total_seconds, new_seconds) VALUES (?1, ?2, ?2)
             ON CONFLICT (name) DO UPDATE SET total_seconds = total_seconds + ?2,
                                              new_seconds = new_seconds + ?2",
            params![dataset, seconds],
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)?;
        self.ledger(dataset)
    }

    /// Appends that began and never finished: (dataset, offset) with the lowest offset per
    /// dataset. Their rows are removed by [`Journal::dataset_clear_pending`].
    pub fn dataset_pending(&self) -> Result<Vec<(String, u64)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT dataset, MIN(manifest_offset) FROM dataset_inputs
                 WHERE state = 'pending' GROUP BY dataset",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    pub fn dataset_clear_pending(&mut self, dataset: &str) -> Result<(), JournalError> {
        self.conn
            .execute(
                "DELETE FROM dataset_inputs WHERE dataset = ?1 AND state = 'pending'",
                params![dataset],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// Contents whose copy in `dataset`'s remote storage is not made yet; with `removed`,
    /// contents taken out whose copy there is not deleted yet.
    pub fn dataset_unsynced(
        &self,
        dataset: &str,
        removed: bool,
    ) -> Result<Vec<String>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sha256 FROM dataset_inputs WHERE dataset = ?1 AND state = ?2 AND synced = 0",
            )
            .map_err(self.db())?;
        let state = if removed { "removed" } else { "added" };
        let rows = stmt
            .query_map(params![dataset, state], |r| r.get(0))
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Contents a dataset holds whose every input was deleted since (by retention, or with
    /// the object in S3): each must leave the dataset's future manifests. At most `limit`.
    /// A content whose inputs the journal does not know is left alone.
    pub fn dataset_orphans(
        &self,
        dataset: &str,
        limit: usize,
    ) -> Result<Vec<String>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.sha256 FROM dataset_inputs d
                 WHERE d.dataset = ?1 AND d.state = 'added'
                   AND EXISTS (SELECT 1 FROM inputs i WHERE i.sha256 = d.sha256)
                   AND NOT EXISTS (
                       SELECT 1 FROM inputs i WHERE i.sha256 = d.sha256 AND i.state = 'done'
                         AND i.input_removed_at IS NULL AND i.version NOT LIKE '% retired@%')
                 LIMIT ?2",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![dataset, limit as i64], |r| r.get(0))
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Content `sha256` left `dataset` (its lines are out of the manifest, its audio
    /// deleted): its seconds leave the ledger (the new hours too, if no successful run began
    /// after it came), and each input with that content gets a `dataset_removed` event.
    /// Its copy in S3, if any, is deleted by the next sync ([`Journal::dataset_unsynced`]).
    pub fn dataset_forgot(
        &mut self,
        dataset: &str,
        sha256: &str,
        pieces: usize,
    ) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let row: Option<(f64, i64)> = tx
            .query_row(
                "SELECT seconds, at FROM dataset_inputs
                 WHERE dataset = ?1 AND sha256 = ?2 AND state = 'added'",
                params![dataset, sha256],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&db)?;
        let Some((seconds, added_at)) = row else {
            return Ok(());
        };
        tx.execute(
            "UPDATE dataset_inputs SET state = 'removed', synced = 0 WHERE dataset = ?1 AND sha256 = ?2",
            params![dataset, sha256],
        )
        .map_err(&db)?;
        let trained: Option<i64> = tx
            .query_row(
                "SELECT MAX(started_at) FROM runs WHERE dataset = ?1 AND state = 'succeeded'",
                params![dataset],
                |r| r.get(0),
            )
            .map_err(&db)?;
        let still_new = trained.is_none_or(|t| added_at > t);
        tx.execute(
            "UPDATE datasets SET total_seconds = MAX(0, total_seconds - ?2),
                                 new_seconds = MAX(0, new_seconds - ?3)
             WHERE name = ?1",
            params![dataset, seconds, if still_new { seconds } else { 0.0 }],
        )
        .map_err(&db)?;
        let detail = format!(
            "dataset {dataset}: {pieces} piece(s), {seconds:.1} s taken out of its future manifests (every input with this content was deleted)"
        );
        tx.execute(
            "INSERT INTO events (input_id, at, state, detail)
             SELECT id, ?2, 'dataset_removed', ?3 FROM inputs WHERE sha256 = ?1",
            params![sha256, now, detail],
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)
    }

    /// The copy in (or the deletion from) remote storage of content `sha256` is done, if
    /// the content is still `added` (or `removed`, with `removed`): a content forgotten or
    /// added again meanwhile keeps waiting for its own copy or deletion.
    /// Every content of `dataset` is to be copied to S3 again.
    pub fn dataset_resync(&mut self, dataset: &str) -> Result<(), JournalError> {
        self.conn
            .execute(
                "UPDATE dataset_inputs SET synced = 0 WHERE dataset = ?1 AND state = 'added'",
                params![dataset],
            )
            .map_err(self.db())?;
        Ok(())
    }

    pub fn dataset_mark_synced(
        &mut self,
        dataset: &str,
        sha256: &str,
        removed: bool,
    ) -> Result<(), JournalError> {
        self.conn
            .execute(
                "UPDATE dataset_inputs SET synced = 1 WHERE dataset = ?1 AND sha256 = ?2 AND state = ?3",
                params![dataset, sha256, if removed { "removed" } else { "added" }],
            )
            .map_err(self.db())?;
        Ok(())
    }

    pub fn ledger(&self, dataset: &str) -> Result<Ledger, JournalError> {
        self.conn
            .query_row(
                "SELECT total_seconds, new_seconds, last_run_start FROM datasets WHERE name = ?1",
                params![dataset],
                |r| {
                    Ok(Ledger {
                        total_seconds: r.get(0)?,
                        new_seconds: r.get(1)?,
                        last_run_start: r.get(2)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(self.db())
    }

    /// Records a run starting now, unless one of `dataset` is still running (`false`).
    pub fn run_start(
        &mut self,
        id: &str,
        dataset: &str,
        seconds: f64,
    ) -> Result<bool, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let running: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE dataset = ?1 AND state = 'running'",
                params![dataset],
                |r| r.get(0),
            )
            .map_err(&db)?;
        if running > 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO runs (id, dataset, state, seconds, started_at) VALUES (?1, ?2, 'running', ?3, ?4)",
            params![id, dataset, seconds, now],
        )
        .map_err(&db)?;
        let detail = format!("dataset {dataset}: {:.2} h of new audio", seconds / 3600.0);
        record_event(&tx, Some(id), None, now, "training_started", &detail).map_err(&db)?;
        tx.execute(
            "INSERT INTO datasets (name, last_run_start) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET last_run_start = ?2",
            params![dataset, now],
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(true)
    }

    pub fn run_set_pid(&mut self, id: &str, pid: u32) -> Result<(), JournalError> {
        self.conn
            .execute("UPDATE runs SET pid = ?2 WHERE id = ?1", params![id, pid])
            .map_err(self.db())?;
        Ok(())
    }

    /// A run ended. Success takes the seconds it trained on off the dataset's new hours
    /// (hours added while it ran stay); any other end leaves the ledger alone.
    pub fn run_end(&mut self, id: &str, state: RunState, detail: &str) -> Result<(), JournalError> {
        self.run_end_uploading(id, state, detail, false)
    }

    /// The same; with `upload`, its folder has yet to reach S3, and its `training_finished`
    /// waits (outbox state `held`) until [`Journal::run_uploaded`].
    pub fn run_end_uploading(
        &mut self,
        id: &str,
        state: RunState,
        detail: &str,
        upload: bool,
    ) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        let run: Option<(String, f64)> = tx
            .query_row(
                "SELECT dataset, seconds FROM runs WHERE id = ?1 AND state = 'running'",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&db)?;
        let Some((dataset, seconds)) = run else {
            return Ok(());
        };
        let now = now_ms();
        tx.execute(
            // A folder copied before this (the copy runs beside the run's end) stays `done`.
            "UPDATE runs SET state = ?2, ended_at = ?3, detail = ?4, upload = COALESCE(upload, ?5)
             WHERE id = ?1",
            params![id, state.as_str(), now, detail, upload.then_some("pending")],
        )
        .map_err(&db)?;
        let event = format!("training_{}", state.as_str());
        record_event(&tx, Some(id), None, now, &event, detail).map_err(&db)?;
        if state == RunState::Succeeded {
            tx.execute(
                "UPDATE datasets SET new_seconds = MAX(0, new_seconds - ?2) WHERE name = ?1",
                params![dataset, seconds],
            )
            .map_err(&db)?;
        }
        tx.commit().map_err(&db)
    }

    /// Run `id`'s folder is complete in S3: its held `training_finished` goes out now.
    /// Returns whether this was news.
    pub fn run_uploaded(&mut self, id: &str) -> Result<bool, JournalError> {
        // A copy that ends before the run's end is journaled counts too (upload still NULL).
        self.release_held(
            id,
            "done",
            "upload IS NULL OR upload = 'pending'",
            "training_uploaded",
            "its folder is complete in S3",
        )
    }

    /// Ends run `id`'s wait for S3 (`upload` set to `to` where `from` holds) and sends its
    /// held `training_finished`; the change, if it was news, is an `event` of the run.
    fn release_held(
        &mut self,
        id: &str,
        to: &str,
        from: &str,
        event: &str,
        detail: &str,
    ) -> Result<bool, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let news = tx
            .execute(
                &format!("UPDATE runs SET upload = ?2 WHERE id = ?1 AND ({from})"),
                params![id, to],
            )
            .map_err(&db)?;
        tx.execute(
            "UPDATE outbox SET state = 'pending', next_at = ?2 WHERE run_id = ?1 AND state = 'held'",
            params![id, now],
        )
        .map_err(&db)?;
        if news == 1 {
            record_event(&tx, Some(id), None, now, event, detail).map_err(&db)?;
        }
        tx.commit().map_err(&db)?;
        Ok(news == 1)
    }

    /// Run `id`'s folder was removed (`keep_runs`): an event of the run says so.
    pub fn run_folder_removed(&mut self, id: &str, why: &str) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        record_event(
            &tx,
            Some(id),
            None,
            now_ms(),
            "training_folder_removed",
            why,
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)
    }

    /// Runs whose folder waits to be copied to S3 (their `training_finished` held): (id,
    /// dataset).
    pub fn runs_awaiting_upload(&self) -> Result<Vec<(String, String)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, dataset FROM runs WHERE upload = 'pending' ORDER BY started_at")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Run `id`'s folder will not be copied to S3 (its dataset is no longer configured in
    /// S3): its held `training_finished` goes out now, and an event says why.
    pub fn run_upload_abandoned(&mut self, id: &str, why: &str) -> Result<(), JournalError> {
        self.release_held(
            id,
            "abandoned",
            "upload = 'pending'",
            "training_upload_abandoned",
            why,
        )
        .map(drop)
    }

    /// Runs of `dataset` (all datasets when `None`), newest first.
    pub fn runs(&self, dataset: Option<&str>) -> Result<Vec<Run>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, dataset, state, seconds, started_at, ended_at, pid, detail FROM runs
                 WHERE ?1 IS NULL OR dataset = ?1 ORDER BY started_at DESC, id DESC",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![dataset], |r| {
                Ok(Run {
                    id: r.get(0)?,
                    dataset: r.get(1)?,
                    state: RunState::parse(&r.get::<_, String>(2)?),
                    seconds: r.get(3)?,
                    started_at: r.get(4)?,
                    ended_at: r.get(5)?,
                    pid: r.get(6)?,
                    detail: r.get(7)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_correction_moves_the_ledger_and_a_replay_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        j.dataset_begin("d", "aa", 0, "a.wav").unwrap();
        j.dataset_added("d", "aa", 60.0, 3).unwrap();
        let c = Corrected {
            dataset: "d".into(),
            sha256: "aa".into(),
            file: "a.srt".into(),
            file_sha256: "f1".into(),
            pieces: 2,
            seconds: 40.0,
            unused_cues: 1,
            at: 5,
        };
        j.dataset_corrected(&c).unwrap();
        j.dataset_corrected(&c).unwrap();
        assert_eq!(j.corrections_of("aa").unwrap(), vec![c.clone()]);
        assert_eq!(j.ledger("d").unwrap().total_seconds, 40.0);
        let again = Corrected {
            file_sha256: "f2".into(),
            seconds: 50.0,
            ..c.clone()
        };
        j.dataset_corrected(&again).unwrap();
        assert_eq!(j.corrections_of("aa").unwrap(), vec![c, again]);
        assert_eq!(j.ledger("d").unwrap().total_seconds, 50.0);
    }

    #[test]
    fn the_ledger_counts_each_content_once_and_runs_reset_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        assert!(j.dataset_begin("d", "aa", 0, "a.wav").unwrap());
        assert_eq!(j.dataset_pending().unwrap(), vec![("d".to_string(), 0)]);
        j.dataset_added("d", "aa", 60.0, 3).unwrap();
        assert!(!j.dataset_begin("d", "aa", 100, "copy of a.wav").unwrap());
        assert!(j.dataset_begin("d", "bb", 100, "b.wav").unwrap());
        let l = j.dataset_added("d", "bb", 30.0, 1).unwrap();
        assert_eq!((l.total_seconds, l.new_seconds), (90.0, 90.0));
        assert!(j.dataset_pending().unwrap().is_empty());

        assert!(j.run_start("r1", "d", 90.0).unwrap());
        assert!(!j.run_start("r2", "d", 90.0).unwrap(), "one run at a time");
        j.dataset_begin("d", "cc", 200, "c.wav").unwrap();
        j.dataset_added("d", "cc", 10.0, 1).unwrap();
        j.run_end("r1", RunState::Failed, "exit 1").unwrap();
        assert_eq!(
            j.ledger("d").unwrap().new_seconds,
            100.0,
            "a failure resets nothing"
        );
        assert!(j.run_start("r3", "d", 100.0).unwrap());
        j.dataset_begin("d", "dd", 300, "d.wav").unwrap();
        j.dataset_added("d", "dd", 5.0, 1).unwrap();
        j.run_end("r3", RunState::Succeeded, "exit 0").unwrap();
        let l = j.ledger("d").unwrap();
        assert_eq!((l.total_seconds, l.new_seconds), (105.0, 5.0));
        let runs = j.runs(Some("d")).unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs
            .iter()
            .any(|r| r.id == "r1" && r.state == RunState::Failed));
        // Each start and end is an event of its run, for the audit log and `history`.
        let story: Vec<(String, String, String)> = j
            .training_events(None)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.event, e.detail.unwrap_or_default()))
            .collect();
        let said: Vec<(&str, &str)> = story
            .iter()
            .map(|(run, event, _)| (run.as_str(), event.as_str()))
            .collect();
        assert_eq!(
            said,
            [
                ("r1", "training_started"),
                ("r1", "training_failed"),
                ("r3", "training_started"),
                ("r3", "training_succeeded"),
            ]
        );
        assert_eq!(story[1].2, "exit 1");
        assert_eq!(j.events_after(0, 10).unwrap()[0].source, "dataset:d");
        assert_eq!(j.training_events(Some("r3")).unwrap().len(), 2);
    }

    #[test]
    fn a_content_is_an_orphan_once_every_input_with_it_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let input = |j: &mut Journal, key: &str, sha: &str| {
            j.conn
                .execute(
                    "INSERT INTO inputs (source, key, version, state, sha256, seen_at, updated_at)
                     VALUES ('s', ?1, 'v', 'done', ?2, 0, 0)",
                    params![key, sha],
                )
                .unwrap();
        };
        input(&mut j, "a.wav", "aa");
        input(&mut j, "twin.wav", "aa");
        input(&mut j, "b.wav", "bb");
        for sha in ["aa", "bb", "cc"] {
            j.dataset_begin("d", sha, 0, "x").unwrap();
            j.dataset_added("d", sha, 1.0, 1).unwrap();
        }
        assert!(j.dataset_orphans("d", 10).unwrap().is_empty());
        // Retention deleted a.wav: its twin still holds the content.
        j.conn
            .execute(
                "UPDATE inputs SET input_removed_at = 1 WHERE key = 'a.wav'",
                [],
            )
            .unwrap();
        assert!(j.dataset_orphans("d", 10).unwrap().is_empty());
        j.retire_key("s", "twin.wav", "object deleted").unwrap();
        // "cc" has no input the journal knows of: it is left alone.
        assert_eq!(j.dataset_orphans("d", 10).unwrap(), ["aa"]);
        j.dataset_forgot("d", "aa", 1).unwrap();
        assert!(j.dataset_orphans("d", 10).unwrap().is_empty());
        // A copy to S3 that ends after the content was forgotten does not hide its deletion.
        j.dataset_mark_synced("d", "aa", false).unwrap();
        assert_eq!(j.dataset_unsynced("d", true).unwrap(), ["aa"]);
        j.dataset_mark_synced("d", "aa", true).unwrap();
        assert!(j.dataset_unsynced("d", true).unwrap().is_empty());
        let trail: Vec<String> = j.history(1).unwrap().into_iter().map(|e| e.1).collect();
        assert_eq!(trail.last().map(String::as_str), Some("dataset_removed"));
    }

    #[test]
    fn an_unfinished_append_is_pending_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        j.dataset_begin("d", "aa", 0, "a").unwrap();
        j.dataset_added("d", "aa", 1.0, 1).unwrap();
        j.dataset_begin("d", "bb", 50, "b").unwrap();
        j.dataset_begin("d", "cc", 80, "c").unwrap();
        assert_eq!(j.dataset_pending().unwrap(), vec![("d".to_string(), 50)]);
        j.dataset_clear_pending("d").unwrap();
        assert!(j.dataset_pending().unwrap().is_empty());
        assert!(
            j.dataset_begin("d", "bb", 50, "b").unwrap(),
            "b can be added again"
        );
        assert_eq!(j.ledger("d").unwrap().total_seconds, 1.0);
    }
}
