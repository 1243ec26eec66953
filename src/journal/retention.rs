//! Retention marks: which finished inputs have had their kept copy (in `done/` or
//! `failed/`) or their local outputs deleted by policy, recorded with an event so the
//! audit trail says when and why.

use rusqlite::params;

use super::{begin, db_error, now_ms, Input, Journal, JournalError, State};

/// What retention removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The input's copy kept in `done/`.
    DoneCopy,
    /// The input moved aside to `failed/` (and its report).
    FailedCopy,
    /// The input's local outputs.
    Outputs,
}

impl Removal {
    fn column(self) -> &'static str {
        match self {
            Removal::DoneCopy | Removal::FailedCopy => "input_removed_at",
            Removal::Outputs => "outputs_removed_at",
        }
    }
    fn states(self) -> &'static [State] {
        match self {
            Removal::DoneCopy | Removal::Outputs => &[State::Done],
            Removal::FailedCopy => &[State::Quarantined],
        }
    }
}

impl Journal {
    /// Inputs of `source` whose `what` is due for removal: final before `before_ms` and not
    /// removed yet. At most `limit`.
    pub fn retention_due(
        &self,
        source: &str,
        what: Removal,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<Input>, JournalError> {
        let mut ids: Vec<i64> = Vec::new();
        for state in what.states() {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT id FROM inputs WHERE source = ?1 AND state = ?2 AND updated_at < ?3
                     AND {} IS NULL ORDER BY id LIMIT ?4",
                    what.column()
                ))
                .map_err(self.db())?;
            let rows = stmt
                .query_map(
                    params![source, state.as_str(), before_ms, limit as i64],
                    |r| r.get(0),
                )
                .map_err(self.db())?;
            ids.extend(rows.collect::<Result<Vec<i64>, _>>().map_err(self.db())?);
        }
        ids.into_iter()
            .filter_map(|id| self.get(id).transpose())
            .collect()
    }

    /// Records that retention removed `what` of input `id` (`detail`: which files, why).
    pub fn mark_removed(
        &mut self,
        id: i64,
        what: Removal,
        detail: &str,
    ) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        tx.execute(
            &format!("UPDATE inputs SET {} = ?2 WHERE id = ?1", what.column()),
            params![id, now],
        )
        .map_err(&db)?;
        tx.execute(
            "INSERT INTO events (input_id, at, state, detail) VALUES (?1, ?2, 'deleted', ?3)",
            params![id, now, detail],
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)
    }
}
