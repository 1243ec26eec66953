//! The notification outbox. Rows are added by triggers (see `OUTBOX_SCHEMA`) in the same
//! transaction as the state change they announce; the sender (`daemon/notify.rs`) takes
//! due rows, and records each outcome here: sent, retry later, or dead (undeliverable,
//! kept for `hotfolderd status` and `hotfolderd notify resend`).

use rusqlite::{params, OptionalExtension};

use super::{begin, db_error, now_ms, Journal, JournalError};

/// One `[[notify]]` target's interest: these events, from these sources (journal source
/// ids; empty = all).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub target: String,
    pub events: Vec<String>,
    pub sources: Vec<String>,
}

/// One notification to send (or sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: i64,
    /// The idempotency key: the same for every attempt, across restarts.
    pub delivery: String,
    pub target: String,
    pub event: String,
    pub input_id: Option<i64>,
    pub run_id: Option<String>,
    /// For `model_promoted`: the registry's model id.
    pub model_id: Option<i64>,
    pub created_at: i64,
    pub attempts: i64,
    pub state: String,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: i64,
    /// A run's `training_finished`, waiting for its folder to be complete in S3.
    pub held: i64,
    pub sent: i64,
    pub dead: i64,
}

const COLUMNS: &str =
    "id, delivery, target, event, input_id, run_id, created_at, attempts, state, last_error, model_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        delivery: r.get(1)?,
        target: r.get(2)?,
        event: r.get(3)?,
        input_id: r.get(4)?,
        run_id: r.get(5)?,
        created_at: r.get(6)?,
        attempts: r.get(7)?,
        state: r.get(8)?,
        last_error: r.get(9)?,
        model_id: r.get(10)?,
    })
}

impl Journal {
    /// Replaces the subscriptions with the configured ones. Rows already in the outbox stay.
    pub fn set_subscriptions(&mut self, subs: &[Subscription]) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        tx.execute("DELETE FROM subscriptions", []).map_err(&db)?;
        for s in subs {
            let sources: Vec<&str> = if s.sources.is_empty() {
                vec![""]
            } else {
                s.sources.iter().map(String::as_str).collect()
            };
            for event in &s.events {
                for source in &sources {
                    tx.execute(
                        "INSERT OR IGNORE INTO subscriptions (target, event, source) VALUES (?1, ?2, ?3)",
                        params![s.target, event, source],
                    )
                    .map_err(&db)?;
                }
            }
        }
        tx.commit().map_err(&db)
    }

    /// Pending notifications due now, oldest first.
    pub fn due_notifications(&self, limit: usize) -> Result<Vec<Notification>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND next_at <= ?1
                 ORDER BY id LIMIT ?2"
            ))
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![now_ms(), limit as i64], row)
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Milliseconds until the next pending notification is due (0 if one is due now).
    pub fn next_notification_in_ms(&self) -> Result<Option<i64>, JournalError> {
        let at: Option<i64> = self
            .conn
            .query_row(
                "SELECT MIN(next_at) FROM outbox WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .map_err(self.db())?;
        Ok(at.map(|at| (at - now_ms()).max(0)))
    }

    /// Delivered: the row is kept as sent, and the input's audit trail says so.
    pub fn notification_sent(&mut self, n: &Notification) -> Result<(), JournalError> {
        let detail = format!("{} → {} (delivery {})", n.event, n.target, n.delivery);
        self.notification_end(n.id, "sent", None, 0, n.input_id, "notified", &detail)
    }

    /// Not delivered this time: try again in `delay_ms`.
    pub fn notification_retry(
        &mut self,
        id: i64,
        error: &str,
        delay_ms: i64,
    ) -> Result<(), JournalError> {
        self.conn
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_at = ?3
                 WHERE id = ?1 AND state = 'pending'",
                params![id, error, now_ms() + delay_ms],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// Undeliverable (refused, or out of attempts): kept as dead until resent.
    pub fn notification_dead(&mut self, n: &Notification, error: &str) -> Result<(), JournalError> {
        let detail = format!("{} → {}: {error}", n.event, n.target);
        let input = n.input_id;
        self.notification_end(
            n.id,
            "dead",
            Some(error),
            1,
            input,
            "notify_failed",
            &detail,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn notification_end(
        &mut self,
        id: i64,
        state: &str,
        error: Option<&str>,
        attempt: i64,
        input_id: Option<i64>,
        event: &str,
        detail: &str,
    ) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        tx.execute(
            "UPDATE outbox SET state = ?2, attempts = attempts + ?3,
                    last_error = COALESCE(?4, last_error), sent_at = ?5
             WHERE id = ?1 AND state = 'pending'",
            params![id, state, attempt, error, now],
        )
        .map_err(&db)?;
        if let Some(input) = input_id {
            tx.execute(
                "INSERT INTO events (input_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
                params![input, now, event, detail],
            )
            .map_err(&db)?;
        }
        tx.commit().map_err(&db)
    }

    pub fn outbox_counts(&self) -> Result<OutboxCounts, JournalError> {
        let mut c = OutboxCounts::default();
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.db())?;
        for r in rows {
            let (state, n) = r.map_err(self.db())?;
            match state.as_str() {
                "pending" => c.pending = n,
                "held" => c.held = n,
                "sent" => c.sent = n,
                _ => c.dead += n,
            }
        }
        Ok(c)
    }

    /// Notifications in `state` ("pending", "held", "sent", "dead"), newest first.
    pub fn notifications(
        &self,
        state: &str,
        limit: usize,
    ) -> Result<Vec<Notification>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE state = ?1 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![state, limit as i64], row)
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Every notification about input `id`, oldest first.
    pub fn notifications_for(&self, input_id: i64) -> Result<Vec<Notification>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE input_id = ?1 ORDER BY id"
            ))
            .map_err(self.db())?;
        let rows = stmt.query_map(params![input_id], row).map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Dead notifications (these ids, or all when `ids` is empty) go back to pending, due
    /// now, with the same delivery key. Returns how many.
    pub fn resend_notifications(&mut self, ids: &[i64]) -> Result<usize, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let n = if ids.is_empty() {
            tx.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?1 WHERE state = 'dead'",
                params![now],
            )
            .map_err(&db)?
        } else {
            let mut n = 0;
            for id in ids {
                n += tx
                    .execute(
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?1
                         WHERE state = 'dead' AND id = ?2",
                        params![now, id],
                    )
                    .map_err(&db)?;
            }
            n
        };
        tx.commit().map_err(&db)?;
        Ok(n)
    }

    /// What the transcription of input `id` found (`finish`'s `result`).
    pub fn result(&self, id: i64) -> Result<Option<serde_json::Value>, JournalError> {
        let text: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT result FROM inputs WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// The input's `seen_at` (unix ms).
    pub fn seen_at(&self, id: i64) -> Result<Option<i64>, JournalError> {
        self.conn
            .query_row(
                "SELECT seen_at FROM inputs WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::tests::journal;
    use crate::journal::State;

    use super::*;

    fn subscribe(j: &mut Journal, events: &[&str], sources: &[&str]) {
        j.set_subscriptions(&[Subscription {
            target: "hook".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            sources: sources.iter().map(|e| e.to_string()).collect(),
        }])
        .unwrap();
    }

    fn finished(j: &mut Journal, source: &str, key: &str, to: State) -> i64 {
        let (id, _) = j.record_seen(source, key, "v1", 1).unwrap();
        for s in [State::Stable, State::Queued, State::Running] {
            j.transition(id, s, None).unwrap();
        }
        if to == State::Done {
            j.finish(id, &["out".into()], None).unwrap();
        } else {
            j.transition(id, to, Some("bad")).unwrap();
        }
        id
    }

    #[test]
    fn final_states_fill_the_outbox_for_subscribed_events_and_sources() {
        let (_d, mut j) = journal();
        subscribe(&mut j, &["done", "failed"], &["watch:/a"]);
        let done = finished(&mut j, "watch:/a", "x.wav", State::Done);
        finished(&mut j, "watch:/a", "y.wav", State::Quarantined);
        finished(&mut j, "watch:/b", "z.wav", State::Done);
        let due = j.due_notifications(10).unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(
            (due[0].input_id, due[0].event.as_str()),
            (Some(done), "done")
        );
        assert_eq!(due[0].delivery.len(), 32);

        j.notification_retry(due[0].id, "connection refused", 60_000)
            .unwrap();
        assert!(j.due_notifications(10).unwrap().is_empty());
        assert!(j.next_notification_in_ms().unwrap().unwrap() > 50_000);
        let n = &j.notifications("pending", 10).unwrap()[0];
        assert_eq!(
            (n.attempts, n.delivery.as_str()),
            (1, due[0].delivery.as_str())
        );
        j.notification_dead(n, "410 Gone").unwrap();
        assert_eq!(
            j.outbox_counts().unwrap(),
            OutboxCounts {
                pending: 0,
                held: 0,
                sent: 0,
                dead: 1
            }
        );
        assert_eq!(j.resend_notifications(&[]).unwrap(), 1);
        let again = j.due_notifications(10).unwrap();
        assert_eq!(again[0].delivery, due[0].delivery, "a resend keeps its key");
        j.notification_sent(&again[0]).unwrap();
        assert_eq!(j.outbox_counts().unwrap().sent, 1);
        let trail: Vec<String> = j.history(done).unwrap().into_iter().map(|e| e.1).collect();
        assert_eq!(
            trail.iter().filter(|s| *s == "notified").count(),
            1,
            "{trail:?}"
        );
        assert!(trail.contains(&"notify_failed".to_string()));
    }

    #[test]
    fn training_runs_announce_their_start_and_end() {
        let (_d, mut j) = journal();
        subscribe(&mut j, &["training_started", "training_finished"], &[]);
        assert!(j.run_start("r1", "calls", 7200.0).unwrap());
        j.run_set_pid("r1", 42).unwrap();
        let due = j.due_notifications(10).unwrap();
        assert_eq!(due.len(), 1, "a pid update is not an end: {due:?}");
        assert_eq!(
            (due[0].event.as_str(), due[0].run_id.as_deref()),
            ("training_started", Some("r1"))
        );
        j.run_end("r1", crate::journal::RunState::Succeeded, "ok")
            .unwrap();
        let due = j.due_notifications(10).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[1].event, "training_finished");
    }

    #[test]
    fn an_s3_runs_end_is_held_until_its_folder_is_in_s3() {
        use crate::journal::RunState;
        let (_d, mut j) = journal();
        subscribe(&mut j, &["training_finished"], &[]);
        j.run_start("r1", "calls", 60.0).unwrap();
        j.run_end_uploading("r1", RunState::Succeeded, "ok", true)
            .unwrap();
        assert!(j.due_notifications(10).unwrap().is_empty());
        assert_eq!(j.outbox_counts().unwrap().held, 1);
        assert_eq!(
            j.notifications("held", 10).unwrap()[0].run_id.as_deref(),
            Some("r1")
        );
        assert!(j.run_uploaded("r1").unwrap());
        assert!(!j.run_uploaded("r1").unwrap(), "once");
        let due = j.due_notifications(10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event, "training_finished");
        // A copy that finished before the run's end was journaled holds nothing back.
        j.run_start("r2", "calls", 60.0).unwrap();
        j.run_uploaded("r2").unwrap();
        j.run_end_uploading("r2", RunState::Succeeded, "ok", true)
            .unwrap();
        assert_eq!(j.due_notifications(10).unwrap().len(), 2);
        let story: Vec<String> = j
            .training_events(Some("r2"))
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(
            story,
            [
                "training_started",
                "training_uploaded",
                "training_succeeded"
            ]
        );
        // A run whose dataset left S3 is released with the reason, once.
        j.run_start("r3", "calls", 60.0).unwrap();
        j.run_end_uploading("r3", RunState::Failed, "x", true)
            .unwrap();
        assert_eq!(
            j.runs_awaiting_upload().unwrap(),
            [("r3".to_string(), "calls".to_string())]
        );
        j.run_upload_abandoned("r3", "no longer in S3").unwrap();
        j.run_upload_abandoned("r3", "no longer in S3").unwrap();
        assert!(j.runs_awaiting_upload().unwrap().is_empty());
        assert_eq!(j.due_notifications(10).unwrap().len(), 3);
        assert_eq!(j.training_events(Some("r3")).unwrap().len(), 3);
    }

    #[test]
    fn a_promotion_and_a_rollback_each_announce_the_model_that_serves() {
        let (_d, mut j) = journal();
        subscribe(&mut j, &["model_promoted"], &[]);
        j.models_start("aa", "/m/a.bin").unwrap();
        assert!(
            j.due_notifications(10).unwrap().is_empty(),
            "the first model is no promotion"
        );
        let id = j
            .model_add("bb", "/m/b.bin", &crate::journal::Lineage::default(), None)
            .unwrap()
            .0;
        assert!(
            j.due_notifications(10).unwrap().is_empty(),
            "a candidate is no promotion"
        );
        j.model_promote(id).unwrap();
        j.model_promote(id).unwrap();
        let due = j.due_notifications(10).unwrap();
        assert_eq!(
            due.len(),
            1,
            "promoting the serving model again says nothing: {due:?}"
        );
        assert_eq!(
            (due[0].event.as_str(), due[0].model_id),
            ("model_promoted", Some(id))
        );
        let back = j.model_rollback().unwrap();
        let due = j.due_notifications(10).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[1].model_id, Some(back.id));
    }

    #[test]
    fn without_subscriptions_nothing_is_queued() {
        let (_d, mut j) = journal();
        finished(&mut j, "watch:/a", "x.wav", State::Done);
        assert_eq!(j.outbox_counts().unwrap(), OutboxCounts::default());
    }
}
