//! Inputs that arrived over HTTP (`[http] api`): each upload is an input of source `http:api`
//! whose key is the job id, recorded with the request that came with it (model, language,
//! response format…) in the same transaction that queues it. An `Idempotency-Key` is unique
//! here, so a retried upload finds the job the first one made instead of making another.
//! A job's `callback_url` gets its final state through the notification outbox: a trigger
//! adds the row in the transaction that records that state, as for `[[notify]]` targets.

use rusqlite::{params, OptionalExtension};

use super::{begin, db_error, now_ms, see, step, Journal, JournalError, State};

pub(super) const HTTP_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS http_jobs (
    input_id        INTEGER PRIMARY KEY REFERENCES inputs (id),
    job_id          TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    request         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    callback_url    TEXT
);
CREATE TRIGGER IF NOT EXISTS outbox_http_callback AFTER INSERT ON events
WHEN NEW.state IN ('done', 'failed', 'quarantined', 'cancelled')
BEGIN
    INSERT INTO outbox (delivery, target, event, input_id, created_at, next_at)
    SELECT lower(hex(randomblob(16))), 'callback:' || h.callback_url, NEW.state, NEW.input_id,
           NEW.at, NEW.at
    FROM http_jobs h WHERE h.input_id = NEW.input_id AND h.callback_url IS NOT NULL;
END;
";

/// How the outbox names a job's own callback: this, then its URL.
pub const CALLBACK_TARGET: &str = "callback:";

/// The journal `source` of every HTTP upload.
pub const HTTP_SOURCE: &str = "http:api";

/// One HTTP job as the journal knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpJob {
    pub input_id: i64,
    pub job_id: String,
    /// The request as the API recorded it (JSON).
    pub request: String,
    pub created_at: i64,
    pub state: State,
    pub last_error: Option<String>,
    pub outputs: Vec<String>,
}

/// What [`Journal::http_arrive`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpArrived {
    /// A new job, queued.
    Queued(HttpJob),
    /// The `Idempotency-Key` names a job already journaled: that one, unchanged.
    Known(HttpJob),
}

const JOB_COLUMNS: &str =
    "h.input_id, h.job_id, h.request, h.created_at, i.state, i.last_error, i.outputs
     FROM http_jobs h JOIN inputs i ON i.id = h.input_id";

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HttpJob> {
    let state: String = r.get(4)?;
    let outputs: String = r.get(6)?;
    Ok(HttpJob {
        input_id: r.get(0)?,
        job_id: r.get(1)?,
        request: r.get(2)?,
        created_at: r.get(3)?,
        state: State::parse(&state).unwrap_or(State::Failed),
        last_error: r.get(5)?,
        outputs: serde_json::from_str(&outputs).unwrap_or_default(),
    })
}

impl Journal {
    /// Records an uploaded file (already whole on disk) as a queued input with its request,
    /// in one transaction; with an `idempotency_key` already used, returns that job instead.
    pub fn http_arrive(
        &mut self,
        job_id: &str,
        idempotency_key: Option<&str>,
        size: u64,
        request: &str,
        callback_url: Option<&str>,
    ) -> Result<HttpArrived, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        if let Some(k) = idempotency_key {
            let known = tx
                .query_row(
                    &format!("SELECT {JOB_COLUMNS} WHERE h.idempotency_key = ?1"),
                    params![k],
                    job_row,
                )
                .optional()
                .map_err(&db)?;
            if let Some(job) = known {
                return Ok(HttpArrived::Known(job));
            }
        }
        let (id, _, _) = see(&tx, &self.path, HTTP_SOURCE, job_id, "upload", size, now)?;
        step(&tx, &self.path, id, State::Stable, None, now)?;
        step(&tx, &self.path, id, State::Queued, None, now)?;
        tx.execute(
            "INSERT INTO http_jobs (input_id, job_id, idempotency_key, request, created_at, callback_url)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, job_id, idempotency_key, request, now, callback_url],
        )
        .map_err(&db)?;
        let job = tx
            .query_row(
                &format!("SELECT {JOB_COLUMNS} WHERE h.input_id = ?1"),
                params![id],
                job_row,
            )
            .map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(HttpArrived::Queued(job))
    }

    /// Cancels input `id` if it is still queued (atomically: a worker claiming it meanwhile
    /// wins, and then the worker journals the cancel). Whether it was cancelled here.
    pub fn cancel_queued(&mut self, id: i64, why: &str) -> Result<bool, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let queued: Option<String> = tx
            .query_row("SELECT state FROM inputs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&db)?;
        if queued.as_deref() != Some(State::Queued.as_str()) {
            return Ok(false);
        }
        step(&tx, &self.path, id, State::Cancelled, Some(why), now)?;
        tx.commit().map_err(&db)?;
        Ok(true)
    }

    /// The job an `Idempotency-Key` made, if any.
    pub fn http_job_by_idempotency_key(&self, key: &str) -> Result<Option<HttpJob>, JournalError> {
        self.conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} WHERE h.idempotency_key = ?1"),
                params![key],
                job_row,
            )
            .optional()
            .map_err(self.db())
    }

    /// A job by its public id.
    pub fn http_job(&self, job_id: &str) -> Result<Option<HttpJob>, JournalError> {
        self.conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} WHERE h.job_id = ?1"),
                params![job_id],
                job_row,
            )
            .optional()
            .map_err(self.db())
    }

    /// A job by its input's id.
    pub fn http_job_of_input(&self, input_id: i64) -> Result<Option<HttpJob>, JournalError> {
        self.conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} WHERE h.input_id = ?1"),
                params![input_id],
                job_row,
            )
            .optional()
            .map_err(self.db())
    }

    /// The newest jobs first, `limit` of them, in `state` if given.
    pub fn http_jobs(
        &self,
        state: Option<State>,
        limit: usize,
    ) -> Result<Vec<HttpJob>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} WHERE (?1 IS NULL OR i.state = ?1)
                 ORDER BY h.input_id DESC LIMIT ?2"
            ))
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![state.map(State::as_str), limit as i64], job_row)
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_idempotency_key_gives_one_job_and_jobs_are_listed_by_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        let first = j.http_arrive("a1", Some("k"), 10, "{}", None).unwrap();
        let HttpArrived::Queued(job) = first else {
            panic!("{first:?}")
        };
        assert_eq!(job.state, State::Queued);
        let again = j.http_arrive("a2", Some("k"), 10, "{}", None).unwrap();
        assert_eq!(again, HttpArrived::Known(job.clone()));
        assert!(j.http_job("a2").unwrap().is_none());
        let other = j
            .http_arrive("b", None, 10, "{\"x\":1}", Some("https://hook.example/b"))
            .unwrap();
        assert!(matches!(other, HttpArrived::Queued(_)));
        let no_key = j.http_arrive("c", None, 10, "{}", None).unwrap();
        assert!(matches!(no_key, HttpArrived::Queued(_)));
        assert_eq!(j.http_jobs(None, 10).unwrap().len(), 3);
        assert_eq!(j.http_jobs(Some(State::Done), 10).unwrap().len(), 0);
        assert_eq!(
            j.http_job_by_idempotency_key("k").unwrap().unwrap().job_id,
            "a1"
        );
        let claimed = j.claim_next().unwrap().unwrap();
        // A running job is the worker's to cancel, not the API's.
        assert!(!j.cancel_queued(claimed.id, "by request").unwrap());
        assert_eq!(j.state(claimed.id).unwrap(), Some(State::Running));
        assert_eq!(
            (claimed.source.as_str(), claimed.key.as_str()),
            (HTTP_SOURCE, "a1")
        );
        assert_eq!(
            j.http_jobs(Some(State::Running), 10).unwrap()[0].job_id,
            "a1"
        );
        assert_eq!(j.http_jobs(None, 10).unwrap().len(), 3);
        // Only the job with a callback_url gets a callback, when it ends.
        let b = j.http_job("b").unwrap().unwrap().input_id;
        let c = j.http_job("c").unwrap().unwrap().input_id;
        assert_eq!(j.outbox_counts().unwrap().pending, 0);
        j.transition(b, State::Cancelled, Some("by request"))
            .unwrap();
        j.transition(c, State::Cancelled, Some("by request"))
            .unwrap();
        let due = j.due_notifications(10).unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].target, "callback:https://hook.example/b");
        assert_eq!(
            (due[0].event.as_str(), due[0].input_id),
            ("cancelled", Some(b))
        );
    }
}
