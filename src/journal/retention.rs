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
    /// An HTTP job's upload, kept after it was quarantined or given up (for `retry`).
    Upload,
}

impl Removal {
    fn column(self) -> &'static str {
        match self {
            Removal::DoneCopy | Removal::FailedCopy | Removal::Upload => "input_removed_at",
            Removal::Outputs => "outputs_removed_at",
        }
    }
    fn states(self) -> &'static [State] {
        match self {
            Removal::DoneCopy | Removal::Outputs => &[State::Done],
            Removal::FailedCopy => &[State::Quarantined],
            Removal::Upload => &[State::Quarantined, State::Failed],
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

    /// Trims the trails of inputs final before `before_ms`: keeps each one's `seen` event
    /// and the events of its final state, drops the steps in between — but only events the
    /// audit log already holds (`audit_seq`). Delivered notifications of that age go too.
    /// Input rows, and so every count, stay. Returns how many events were removed.
    pub fn compact(&mut self, before_ms: i64) -> Result<usize, JournalError> {
        let db = db_error(&self.path);
        let copied = self.meta("audit_seq")?;
        let tx = begin(&mut self.conn, &self.path)?;
        let removed = tx
            .execute(
                "DELETE FROM events WHERE id <= ?2 AND state != 'seen' AND id IN (
                     SELECT e.id FROM events e JOIN inputs i ON i.id = e.input_id
                     WHERE i.state IN ('done', 'failed', 'quarantined', 'cancelled') AND i.updated_at < ?1
                       AND e.state != i.state)",
                params![before_ms, copied],
            )
            .map_err(&db)?;
        tx.execute(
            "DELETE FROM outbox WHERE state = 'sent' AND sent_at < ?1",
            params![before_ms],
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(removed)
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

#[cfg(test)]
mod tests {
    use crate::journal::tests::journal;
    use crate::journal::State;

    #[test]
    fn compaction_keeps_first_and_final_events_and_only_what_the_audit_log_has() {
        let (_d, mut j) = journal();
        let (id, _) = j.record_seen("watch:/a", "x.wav", "v", 1).unwrap();
        for s in [State::Stable, State::Queued, State::Running] {
            j.transition(id, s, None).unwrap();
        }
        j.finish(id, &["/o/x.txt".into()], None).unwrap();
        j.note(id, "moved", "to done/").unwrap();
        let later = crate::notify::document::now_ms() + 1000;
        // Nothing copied to the audit log yet: nothing may go.
        assert_eq!(j.compact(later).unwrap(), 0);
        let last = j.events_after(0, 100).unwrap().last().unwrap().seq;
        j.set_meta("audit_seq", last).unwrap();
        assert_eq!(
            j.compact(later).unwrap(),
            4,
            "stable, queued, running, moved"
        );
        let left: Vec<String> = j.history(id).unwrap().into_iter().map(|e| e.1).collect();
        assert_eq!(left, ["seen", "done"]);
        assert_eq!(
            j.counts()
                .unwrap()
                .iter()
                .find(|c| c.0 == State::Done)
                .unwrap()
                .1,
            1
        );
        // Inputs finished after the cut are left alone.
        assert_eq!(j.compact(0).unwrap(), 0);
    }
}
