//! The model registry: each model the daemon has served or a training run has made, with
//! its lineage (parent model, run, dataset, training manifest) and its score, and which one
//! serves. A partial unique index allows one `serving` row at most, and a change of the
//! serving model is one transaction, so a crash at any point (even `kill -9`) leaves exactly
//! one serving model.

use std::path::PathBuf;

use rusqlite::{params, OptionalExtension, Row};

use super::{begin, db_error, now_ms, record_event, Journal, JournalError};

pub(super) const MODELS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS models (
    id              INTEGER PRIMARY KEY,
    sha256          TEXT NOT NULL UNIQUE,
    path            TEXT NOT NULL,
    parent_sha256   TEXT,
    run_id          TEXT,
    dataset         TEXT,
    manifest_sha256 TEXT,
    wer             REAL,
    baseline_wer    REAL,
    state           TEXT NOT NULL CHECK (state IN ('serving', 'candidate', 'retired')),
    created_at      INTEGER NOT NULL,
    served_at       INTEGER,
    removed_at      INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS models_one_serving ON models (state) WHERE state = 'serving';
CREATE TRIGGER IF NOT EXISTS outbox_model_promoted AFTER UPDATE OF state ON models
WHEN NEW.state = 'serving' AND OLD.state != 'serving'
BEGIN
    INSERT INTO outbox (delivery, target, event, model_id, created_at, next_at)
    SELECT lower(hex(randomblob(16))), s.target, 'model_promoted', NEW.id,
           COALESCE(NEW.served_at, 0), COALESCE(NEW.served_at, 0)
    FROM subscriptions s WHERE s.event = 'model_promoted';
END;
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    Serving,
    /// Made by a run and scored, not (or no longer) chosen.
    Candidate,
    /// Served before, replaced since.
    Retired,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Serving => "serving",
            ModelState::Candidate => "candidate",
            ModelState::Retired => "retired",
        }
    }
    fn parse(s: &str) -> ModelState {
        match s {
            "serving" => ModelState::Serving,
            "retired" => ModelState::Retired,
            _ => ModelState::Candidate,
        }
    }
}

/// One registered model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    pub id: i64,
    pub sha256: String,
    pub path: PathBuf,
    pub lineage: Lineage,
    pub state: ModelState,
    pub created_at: i64,
    /// When it last became the serving model.
    pub served_at: Option<i64>,
    /// When its file was removed (`keep_candidates`): it can no longer serve.
    pub removed_at: Option<i64>,
}

/// Where a model came from and how it scored; all empty for a model given by `[asr] model`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lineage {
    pub parent_sha256: Option<String>,
    pub run_id: Option<String>,
    pub dataset: Option<String>,
    pub manifest_sha256: Option<String>,
    /// Its WER on the run's held-out pieces, and its parent's on the same pieces.
    pub wer: Option<f64>,
    pub baseline_wer: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("no model {0} in the registry: `hotfolderd model list` shows their ids")]
    NoSuchModel(i64),
    #[error("model {0}'s file was removed (keep_candidates): it cannot serve; `hotfolderd model list` shows the others")]
    FileRemoved(i64),
    #[error("no model served before the serving one: nothing to roll back to")]
    NothingToRollBackTo,
    #[error("the registry changed meanwhile (another promotion): look at `hotfolderd model list` and try again")]
    Changed,
    #[error("the model it was scored against ({parent}) no longer serves ({}): it is kept as a candidate", .serving.as_deref().unwrap_or("none"))]
    ParentReplaced {
        parent: String,
        serving: Option<String>,
    },
}

const COLUMNS: &str = "id, sha256, path, parent_sha256, run_id, dataset, manifest_sha256, wer, \
                       baseline_wer, state, created_at, served_at, removed_at";

fn row(r: &Row<'_>) -> rusqlite::Result<ModelRow> {
    Ok(ModelRow {
        id: r.get(0)?,
        sha256: r.get(1)?,
        path: PathBuf::from(r.get::<_, String>(2)?),
        lineage: Lineage {
            parent_sha256: r.get(3)?,
            run_id: r.get(4)?,
            dataset: r.get(5)?,
            manifest_sha256: r.get(6)?,
            wer: r.get(7)?,
            baseline_wer: r.get(8)?,
        },
        state: ModelState::parse(&r.get::<_, String>(9)?),
        created_at: r.get(10)?,
        served_at: r.get(11)?,
        removed_at: r.get(12)?,
    })
}

fn serving_sha(c: &rusqlite::Connection) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT sha256 FROM models WHERE state = 'serving'",
        [],
        |r| r.get(0),
    )
    .optional()
}

fn rollback_target(c: &rusqlite::Connection) -> rusqlite::Result<Option<ModelRow>> {
    c.query_row(
        &format!(
            "SELECT {COLUMNS} FROM models
             WHERE state != 'serving' AND served_at IS NOT NULL AND removed_at IS NULL
             ORDER BY served_at DESC, id DESC LIMIT 1"
        ),
        [],
        row,
    )
    .optional()
}

/// Inside a transaction: `id` serves, the one serving until now is retired; both changes
/// are events (`model_retired`, `model_promoted`) saying `why`.
fn switch_to(c: &rusqlite::Connection, id: i64, why: &str) -> rusqlite::Result<()> {
    let now = now_ms();
    let previous: Option<i64> = c
        .query_row(
            "SELECT id FROM models WHERE state = 'serving' AND id != ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    c.execute(
        "UPDATE models SET state = 'retired' WHERE state = 'serving' AND id != ?1",
        params![id],
    )?;
    let promoted = c.execute(
        "UPDATE models SET state = 'serving', served_at = ?2 WHERE id = ?1 AND state != 'serving'",
        params![id, now],
    )?;
    if promoted == 1 {
        record_switch(c, previous, id, now, why)?;
    }
    Ok(())
}

/// The events of a switch from `previous` to `id`.
fn record_switch(
    c: &rusqlite::Connection,
    previous: Option<i64>,
    id: i64,
    now: i64,
    why: &str,
) -> rusqlite::Result<()> {
    if let Some(previous) = previous {
        let detail = format!("model {id} serves instead, {why}");
        record_event(c, None, Some(previous), now, "model_retired", &detail)?;
    }
    record_event(c, None, Some(id), now, "model_promoted", why)
}

/// The id of the model with content `sha256`.
fn id_of(c: &rusqlite::Connection, sha256: &str) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT id FROM models WHERE sha256 = ?1",
        params![sha256],
        |r| r.get(0),
    )
}

/// What `model_registered` says of a run's candidate.
fn candidate_detail(path: &str, l: &Lineage) -> String {
    let wer = |w: Option<f64>| w.map_or_else(|| "unscored".to_string(), |w| format!("{w:.4}"));
    format!(
        "{path}: candidate of run {} on dataset {}, WER {} (its parent {})",
        l.run_id.as_deref().unwrap_or("?"),
        l.dataset.as_deref().unwrap_or("?"),
        wer(l.wer),
        wer(l.baseline_wer),
    )
}

impl Journal {
    /// Start-up with the model `[asr] model` names. A registry that knows that file's
    /// content keeps serving what it serves (a model promoted since); a content it does not
    /// know is the operator's new choice, and serves from now on. Returns the serving model.
    pub fn models_start(&mut self, sha256: &str, path: &str) -> Result<ModelRow, JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        let known: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM models WHERE sha256 = ?1)",
                params![sha256],
                |r| r.get(0),
            )
            .map_err(&db)?;
        let serving: Option<ModelRow> = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM models WHERE state = 'serving'"),
                [],
                row,
            )
            .optional()
            .map_err(&db)?;
        if let (true, Some(s)) = (known, serving) {
            // The configured file holds that content: where the row's file is gone (moved),
            // the row follows it. A row whose file is still there keeps it (a kept copy
            // outlives a configured file that may change later).
            let stored: String = tx
                .query_row(
                    "SELECT path FROM models WHERE sha256 = ?1",
                    params![sha256],
                    |r| r.get(0),
                )
                .map_err(&db)?;
            if !std::path::Path::new(&stored).is_file() {
                tx.execute(
                    "UPDATE models SET path = ?2 WHERE sha256 = ?1",
                    params![sha256, path],
                )
                .map_err(&db)?;
            }
            let s = match tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM models WHERE state = 'serving'"),
                    [],
                    row,
                )
                .optional()
                .map_err(&db)?
            {
                Some(now) => now,
                None => s,
            };
            tx.commit().map_err(&db)?;
            return Ok(s);
        }
        // A content never seen is inserted serving (a first model is no promotion: no
        // `model_promoted` notification); a known one is switched to.
        let now = now_ms();
        let previous: Option<i64> = tx
            .query_row("SELECT id FROM models WHERE state = 'serving'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&db)?;
        tx.execute(
            "UPDATE models SET state = 'retired' WHERE state = 'serving'",
            [],
        )
        .map_err(&db)?;
        tx.execute(
            "INSERT INTO models (sha256, path, state, created_at, served_at)
             VALUES (?1, ?2, 'serving', ?3, ?3)
             ON CONFLICT (sha256) DO UPDATE SET state = 'serving', path = ?2, served_at = ?3",
            params![sha256, path, now],
        )
        .map_err(&db)?;
        let id = id_of(&tx, sha256).map_err(&db)?;
        if !known {
            let detail = format!("{path}, named by [asr] model");
            record_event(&tx, None, Some(id), now, "model_registered", &detail).map_err(&db)?;
        }
        let why = "at start: [asr] model names a content the registry did not serve";
        record_switch(&tx, previous.filter(|p| *p != id), id, now, why).map_err(&db)?;
        let s = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM models WHERE state = 'serving'"),
                [],
                row,
            )
            .map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(s)
    }

    /// Registers a run's candidate (already in place at `path`); a content registered
    /// before keeps its row. With `promote_over`, it also serves from now on, in the same
    /// transaction, if that parent still serves (else the reason it does not). Returns its id.
    pub fn model_add(
        &mut self,
        sha256: &str,
        path: &str,
        lineage: &Lineage,
        promote_over: Option<&str>,
    ) -> Result<(i64, Result<(), RegistryError>), JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        let inserted = tx
            .execute(
                "INSERT INTO models (sha256, path, parent_sha256, run_id, dataset, manifest_sha256,
                                 wer, baseline_wer, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'candidate', ?9)
             ON CONFLICT (sha256) DO NOTHING",
                params![
                    sha256,
                    path,
                    lineage.parent_sha256,
                    lineage.run_id,
                    lineage.dataset,
                    lineage.manifest_sha256,
                    lineage.wer,
                    lineage.baseline_wer,
                    now_ms()
                ],
            )
            .map_err(&db)?;
        let id = id_of(&tx, sha256).map_err(&db)?;
        if inserted == 1 {
            let detail = candidate_detail(path, lineage);
            record_event(&tx, None, Some(id), now_ms(), "model_registered", &detail)
                .map_err(&db)?;
        }
        let promoted = match promote_over {
            None => Ok(()),
            Some(parent) => match serving_sha(&tx).map_err(&db)? {
                Some(now) if now == parent => {
                    let why = format!(
                        "by run {} (WER {} against {})",
                        lineage.run_id.as_deref().unwrap_or("?"),
                        lineage
                            .wer
                            .map_or_else(|| "?".into(), |w| format!("{w:.4}")),
                        lineage
                            .baseline_wer
                            .map_or_else(|| "?".into(), |w| format!("{w:.4}")),
                    );
                    switch_to(&tx, id, &why).map_err(&db)?;
                    Ok(())
                }
                now => Err(RegistryError::ParentReplaced {
                    parent: parent.to_string(),
                    serving: now,
                }),
            },
        };
        tx.commit().map_err(&db)?;
        Ok((id, promoted))
    }

    /// Makes model `id` the serving one, and the one serving until now retired, together.
    pub fn model_promote(&mut self, id: i64) -> Result<ModelRow, RegistryError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        let s = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM models WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()
            .map_err(&db)?
            .ok_or(RegistryError::NoSuchModel(id))?;
        if s.removed_at.is_some() {
            return Err(RegistryError::FileRemoved(id));
        }
        switch_to(&tx, id, "by `hotfolderd model promote`").map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(ModelRow {
            state: ModelState::Serving,
            ..s
        })
    }

    /// Serves again the model that served before the serving one, chosen and switched to in
    /// one transaction (a promotion in between is not undone by a stale choice).
    pub fn model_rollback(&mut self) -> Result<ModelRow, RegistryError> {
        self.model_rollback_to(None)
    }

    /// The same, only if the model it would serve is still `expect` (a caller that checked
    /// that model's file first).
    pub fn model_rollback_to(&mut self, expect: Option<i64>) -> Result<ModelRow, RegistryError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        let target = rollback_target(&tx).map_err(&db)?;
        let target = target.ok_or(RegistryError::NothingToRollBackTo)?;
        if expect.is_some_and(|id| id != target.id) {
            return Err(RegistryError::Changed);
        }
        switch_to(&tx, target.id, "by `hotfolderd model rollback`").map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(ModelRow {
            state: ModelState::Serving,
            ..target
        })
    }

    /// The model that served before the serving one (what a rollback serves).
    pub fn model_rollback_target(&self) -> Result<ModelRow, RegistryError> {
        rollback_target(&self.conn)
            .map_err(db_error(&self.path))?
            .ok_or(RegistryError::NothingToRollBackTo)
    }

    /// Marks model `id` removed (`keep_candidates`), with an event saying why, if it may
    /// go: not serving and not what `model rollback` would serve, checked in the same
    /// transaction, so a promotion from another process cannot slip in between. The caller
    /// deletes the file after a `true`: once marked, nothing serves it.
    pub fn model_mark_removed(&mut self, id: i64, why: &str) -> Result<bool, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let target = rollback_target(&tx).map_err(&db)?.map(|m| m.id);
        if target == Some(id) {
            return Ok(false);
        }
        let marked = tx
            .execute(
                "UPDATE models SET removed_at = ?2
                 WHERE id = ?1 AND removed_at IS NULL AND state != 'serving'",
                params![id, now],
            )
            .map_err(&db)?;
        if marked == 1 {
            record_event(&tx, None, Some(id), now, "model_removed", why).map_err(&db)?;
        }
        tx.commit().map_err(&db)?;
        Ok(marked == 1)
    }

    /// Every registered model, oldest first.
    pub fn models(&self) -> Result<Vec<ModelRow>, JournalError> {
        let db = db_error(&self.path);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM models ORDER BY id"))
            .map_err(&db)?;
        let rows = stmt.query_map([], row).map_err(&db)?;
        rows.collect::<Result<_, _>>().map_err(&db)
    }

    pub fn serving_model(&self) -> Result<Option<ModelRow>, JournalError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM models WHERE state = 'serving'"),
                [],
                row,
            )
            .optional()
            .map_err(db_error(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_model_serves_promotions_retire_the_last_and_rollback_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        assert_eq!(j.serving_model().unwrap(), None);
        let first = j.models_start("aa", "/m/tiny.bin").unwrap();
        assert_eq!(
            (first.sha256.as_str(), first.state),
            ("aa", ModelState::Serving)
        );
        // A restart with the same configured model changes nothing.
        assert_eq!(j.models_start("aa", "/m/tiny.bin").unwrap(), first);
        let lineage = Lineage {
            parent_sha256: Some("aa".into()),
            run_id: Some("r1".into()),
            dataset: Some("calls".into()),
            manifest_sha256: Some("mm".into()),
            wer: Some(0.1),
            baseline_wer: Some(0.2),
        };
        let (bb, _) = j.model_add("bb", "/models/bb.bin", &lineage, None).unwrap();
        assert_eq!(
            j.model_add("bb", "/elsewhere.bin", &lineage, None)
                .unwrap()
                .0,
            bb
        );
        assert_eq!(j.serving_model().unwrap().unwrap().sha256, "aa");
        let promoted = j.model_promote(bb).unwrap();
        assert_eq!(
            (promoted.state, promoted.lineage.clone()),
            (ModelState::Serving, lineage.clone())
        );
        // The configured model, still named by the configuration, does not take over again.
        assert_eq!(j.models_start("aa", "/m/tiny.bin").unwrap().sha256, "bb");
        let states: Vec<_> = j.models().unwrap().iter().map(|m| m.state).collect();
        assert_eq!(states, [ModelState::Retired, ModelState::Serving]);
        assert_eq!(j.model_rollback().unwrap().sha256, "aa");
        assert_eq!(j.model_rollback().unwrap().sha256, "bb");
        assert!(matches!(
            j.model_promote(99),
            Err(RegistryError::NoSuchModel(99))
        ));
        // A run's candidate scored against "aa" does not replace "bb", promoted since.
        let (_, why) = j
            .model_add("dd", "/m/dd.bin", &lineage, Some("aa"))
            .unwrap();
        assert!(
            matches!(why, Err(RegistryError::ParentReplaced { .. })),
            "{why:?}"
        );
        assert_eq!(j.serving_model().unwrap().unwrap().sha256, "bb");
        // A configured model the registry never saw is the operator's choice: it serves.
        assert_eq!(j.models_start("cc", "/m/base.bin").unwrap().sha256, "cc");
        let serving: Vec<_> = j
            .models()
            .unwrap()
            .into_iter()
            .filter(|m| m.state == ModelState::Serving)
            .collect();
        assert_eq!(serving.len(), 1);
    }

    #[test]
    fn every_registry_change_is_an_event_with_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        j.models_start("aa", "/m/tiny.bin").unwrap();
        j.models_start("aa", "/m/tiny.bin").unwrap();
        let lineage = Lineage {
            run_id: Some("r1".into()),
            dataset: Some("calls".into()),
            wer: Some(0.1),
            baseline_wer: Some(0.2),
            ..Lineage::default()
        };
        let (bb, promoted) = j
            .model_add("bb", "/m/bb.bin", &lineage, Some("aa"))
            .unwrap();
        promoted.unwrap();
        j.model_add("bb", "/m/bb.bin", &lineage, None)
            .unwrap()
            .1
            .unwrap();
        j.model_rollback().unwrap();
        j.model_promote(bb).unwrap();
        let story: Vec<(Option<i64>, String, String)> = j
            .training_events(None)
            .unwrap()
            .into_iter()
            .map(|e| {
                assert_eq!((e.input_id, e.source.as_str()), (None, "registry"));
                (e.model_id, e.event, e.detail.unwrap_or_default())
            })
            .collect();
        let said = |i: usize| (story[i].0, story[i].1.as_str());
        let (aa, bb) = (Some(1), Some(bb));
        assert_eq!(
            (0..story.len()).map(said).collect::<Vec<_>>(),
            [
                (aa, "model_registered"),
                (aa, "model_promoted"),
                (bb, "model_registered"),
                (aa, "model_retired"),
                (bb, "model_promoted"),
                (bb, "model_retired"),
                (aa, "model_promoted"),
                (aa, "model_retired"),
                (bb, "model_promoted"),
            ],
            "a restart and a second registration of one content add nothing: {story:?}"
        );
        assert!(story[2]
            .2
            .contains("candidate of run r1 on dataset calls, WER 0.1000"));
        assert!(story[4].2.contains("by run r1"), "{story:?}");
        assert!(story[6].2.contains("model rollback"), "{story:?}");
        assert!(story[8].2.contains("model promote"), "{story:?}");
        // The audit log's copy names the model by its content.
        let copied = j.events_after(0, 100).unwrap();
        assert_eq!(copied.len(), story.len());
        assert_eq!(copied[2].key, "bb");
        // One run's story holds its candidate's events.
        assert_eq!(j.training_events(Some("r1")).unwrap().len(), 4);
    }

    #[test]
    fn the_database_itself_refuses_a_second_serving_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        j.models_start("aa", "/a.bin").unwrap();
        let second = j.conn.execute(
            "INSERT INTO models (sha256, path, state, created_at) VALUES ('bb', '/b', 'serving', 0)",
            [],
        );
        assert!(second.is_err());
    }
}
