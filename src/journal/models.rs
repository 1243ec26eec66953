//! The model registry: each model the daemon has served or a training run has made, with
//! its lineage (parent model, run, dataset, training manifest) and its score, and which one
//! serves. A partial unique index allows one `serving` row at most, and a change of the
//! serving model is one transaction, so a crash at any point (even `kill -9`) leaves exactly
//! one serving model.

use std::path::PathBuf;

use rusqlite::{params, OptionalExtension, Row};

use super::{begin, db_error, now_ms, Journal, JournalError};

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
    served_at       INTEGER
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
    #[error("no model served before the serving one: nothing to roll back to")]
    NothingToRollBackTo,
    #[error("the model it was scored against ({parent}) no longer serves ({}): it is kept as a candidate", .serving.as_deref().unwrap_or("none"))]
    ParentReplaced {
        parent: String,
        serving: Option<String>,
    },
}

const COLUMNS: &str = "id, sha256, path, parent_sha256, run_id, dataset, manifest_sha256, wer, \
                       baseline_wer, state, created_at, served_at";

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
    })
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
            // The configured file is where that content is now (it may have moved).
            tx.execute(
                "UPDATE models SET path = ?2 WHERE sha256 = ?1",
                params![sha256, path],
            )
            .map_err(&db)?;
            let s = if s.sha256 == sha256 {
                ModelRow {
                    path: PathBuf::from(path),
                    ..s
                }
            } else {
                s
            };
            tx.commit().map_err(&db)?;
            return Ok(s);
        }
        let now = now_ms();
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
    /// before keeps its row. Returns its id.
    pub fn model_add(
        &mut self,
        sha256: &str,
        path: &str,
        lineage: &Lineage,
    ) -> Result<i64, JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        tx.execute(
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
        let id = tx
            .query_row(
                "SELECT id FROM models WHERE sha256 = ?1",
                params![sha256],
                |r| r.get(0),
            )
            .map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(id)
    }

    /// Makes model `id` the serving one, and the one serving until now retired, together.
    pub fn model_promote(&mut self, id: i64) -> Result<ModelRow, RegistryError> {
        self.promote_if(id, None)
    }

    /// The same, only while `parent` still serves (a run's candidate was scored against it;
    /// a model promoted since, by hand or by another run, is not replaced).
    pub fn model_promote_over(&mut self, id: i64, parent: &str) -> Result<ModelRow, RegistryError> {
        self.promote_if(id, Some(parent))
    }

    fn promote_if(&mut self, id: i64, parent: Option<&str>) -> Result<ModelRow, RegistryError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        if let Some(parent) = parent {
            let serving: Option<String> = tx
                .query_row(
                    "SELECT sha256 FROM models WHERE state = 'serving'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&db)?;
            if serving.as_deref() != Some(parent) {
                return Err(RegistryError::ParentReplaced {
                    parent: parent.to_string(),
                    serving,
                });
            }
        }
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM models WHERE id = ?1)",
                params![id],
                |r| r.get(0),
            )
            .map_err(&db)?;
        if !exists {
            return Err(RegistryError::NoSuchModel(id));
        }
        tx.execute(
            "UPDATE models SET state = 'retired' WHERE state = 'serving' AND id != ?1",
            params![id],
        )
        .map_err(&db)?;
        tx.execute(
            "UPDATE models SET state = 'serving', served_at = ?2 WHERE id = ?1 AND state != 'serving'",
            params![id, now_ms()],
        )
        .map_err(&db)?;
        let s = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM models WHERE id = ?1"),
                params![id],
                row,
            )
            .map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(s)
    }

    /// Serves again the model that served before the serving one.
    pub fn model_rollback(&mut self) -> Result<ModelRow, RegistryError> {
        let previous = self.model_rollback_target()?;
        self.model_promote(previous.id)
    }

    /// The model that served before the serving one (what a rollback serves).
    pub fn model_rollback_target(&self) -> Result<ModelRow, RegistryError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM models WHERE state != 'serving' AND served_at IS NOT NULL
                     ORDER BY served_at DESC, id DESC LIMIT 1"
                ),
                [],
                row,
            )
            .optional()
            .map_err(db_error(&self.path))?
            .ok_or(RegistryError::NothingToRollBackTo)
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
        let bb = j.model_add("bb", "/models/bb.bin", &lineage).unwrap();
        assert_eq!(j.model_add("bb", "/elsewhere.bin", &lineage).unwrap(), bb);
        assert_eq!(j.serving_model().unwrap().unwrap().sha256, "aa");
        let promoted = j.model_promote(bb).unwrap();
        assert_eq!(
            (promoted.state, promoted.lineage.clone()),
            (ModelState::Serving, lineage)
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
        assert!(matches!(
            j.model_promote_over(1, "aa"),
            Err(RegistryError::ParentReplaced { .. })
        ));
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
