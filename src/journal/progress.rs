//! How far each running job is, as the daemon last wrote it (every few seconds while it
//! moves), so `hotfolderd status` in another process can show it.

use rusqlite::params;

use super::{now_ms, Journal, JournalError};

pub(super) const PROGRESS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS progress (
    input_id INTEGER PRIMARY KEY REFERENCES inputs (id),
    done     REAL NOT NULL,
    total    REAL,
    at       INTEGER NOT NULL
);
";

/// A running input's progress as journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub id: i64,
    pub source: String,
    pub key: String,
    /// Seconds of audio done, and in all (`None`: the input does not say).
    pub done: f64,
    pub total: Option<f64>,
}

impl Journal {
    pub fn set_progress(
        &mut self,
        id: i64,
        done: f64,
        total: Option<f64>,
    ) -> Result<(), JournalError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO progress (input_id, done, total, at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![id, done, total, now_ms()]))
            .map(drop)
            .map_err(self.db())
    }

    /// Forgets the progress of a job that is no longer running.
    pub fn clear_progress(&mut self, id: i64) -> Result<(), JournalError> {
        self.conn
            .execute("DELETE FROM progress WHERE input_id = ?1", params![id])
            .map(drop)
            .map_err(self.db())
    }

    pub(super) fn clear_all_progress(&mut self) -> Result<(), JournalError> {
        self.conn
            .execute("DELETE FROM progress", [])
            .map(drop)
            .map_err(self.db())
    }

    /// The running inputs, oldest first, with their progress (0 until first written).
    pub fn running_progress(&self) -> Result<Vec<Running>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT i.id, i.source, i.key, COALESCE(p.done, 0), p.total
                 FROM inputs i LEFT JOIN progress p ON p.input_id = i.id
                 WHERE i.state = 'running' ORDER BY i.id",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Running {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    key: r.get(2)?,
                    done: r.get(3)?,
                    total: r.get(4)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::journal::Arrival;

    #[test]
    fn running_inputs_show_their_latest_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        j.arrive(&[Arrival {
            source: "watch:/in".into(),
            key: "a.wav".into(),
            version: "1".into(),
            size: 1,
            device: None,
        }])
        .unwrap();
        assert!(j.running_progress().unwrap().is_empty());
        let id = j.claim_next().unwrap().unwrap().id;
        assert_eq!(j.running_progress().unwrap()[0].done, 0.0);
        j.set_progress(id, 12.5, Some(60.0)).unwrap();
        j.set_progress(id, 30.0, Some(60.0)).unwrap();
        let r = &j.running_progress().unwrap()[0];
        assert_eq!(
            (r.done, r.total, r.key.as_str()),
            (30.0, Some(60.0), "a.wav")
        );
        j.clear_progress(id).unwrap();
        assert_eq!(j.running_progress().unwrap()[0].done, 0.0);
    }
}
