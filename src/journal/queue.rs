//! The journal as the work queue: arrivals are recorded and queued in batches (one fsync for
//! many files), workers claim the oldest due input atomically (so several workers never take
//! the same one), and transient failures go back to the queue with a time before which they
//! are not retried.

use rusqlite::{params, OptionalExtension};

use super::{begin, db_error, now_ms, see, step, Input, Journal, JournalError, State};

/// A complete file a source hands over.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub source: String,
    pub key: String,
    /// Tells one version of the same key from the next (size, mtime, inode for files).
    pub version: String,
    pub size: u64,
    /// The file system a file is on (`st_dev`), checked with its inode when it is opened.
    pub device: Option<u64>,
}

/// What [`Journal::arrive`] did with one arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrived {
    /// New (or left half-recorded by a crash): now queued.
    Queued(i64),
    /// Already known in this state; nothing changed.
    Known(i64, State),
}

impl Journal {
    /// Records arrivals and queues the new ones, all in one transaction. Idempotent: an
    /// arrival already queued or beyond is reported as known and left alone; one a crash
    /// stopped between intake steps (still `seen`/`stable`) is brought forward to `queued`.
    pub fn arrive(&mut self, batch: &[Arrival]) -> Result<Vec<Arrived>, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let mut out = Vec::with_capacity(batch.len());
        for a in batch {
            let (id, state, new) =
                see(&tx, &self.path, &a.source, &a.key, &a.version, a.size, now)?;
            if let (true, Some(device)) = (new, a.device) {
                tx.prepare_cached("UPDATE inputs SET device = ?1 WHERE id = ?2")
                    .and_then(|mut s| s.execute(params![device as i64, id]))
                    .map_err(&db)?;
            }
            if state == State::Seen {
                step(&tx, &self.path, id, State::Stable, None, now)?;
            }
            if matches!(state, State::Seen | State::Stable) {
                step(&tx, &self.path, id, State::Queued, None, now)?;
                out.push(Arrived::Queued(id));
            } else {
                out.push(Arrived::Known(id, state));
            }
        }
        tx.commit().map_err(&db)?;
        Ok(out)
    }

    /// Takes the oldest queued input that is due (its retry backoff has passed) and marks it
    /// `running`, atomically; `None` when nothing is due.
    pub fn claim_next(&mut self) -> Result<Option<Input>, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM inputs WHERE state = 'queued' AND not_before <= ?1
                 ORDER BY id LIMIT 1",
                params![now],
                |r| r.get(0),
            )
            .optional()
            .map_err(&db)?;
        let Some(id) = id else {
            return Ok(None);
        };
        step(&tx, &self.path, id, State::Running, None, now)?;
        tx.commit().map_err(&db)?;
        self.get(id)
    }

    /// Milliseconds until the next queued input becomes due, if any is waiting on a backoff.
    pub fn next_due_in_ms(&self) -> Result<Option<i64>, JournalError> {
        let at: Option<i64> = self
            .conn
            .query_row(
                "SELECT MIN(not_before) FROM inputs WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )
            .map_err(db_error(&self.path))?;
        Ok(at.map(|t| (t - now_ms()).max(0)))
    }

    /// A running input could not even be tried (the service it needs is down): back to the
    /// queue for `delay_ms`, and the attempt its claim counted is given back.
    pub fn wait_later(&mut self, id: i64, detail: &str, delay_ms: i64) -> Result<(), JournalError> {
        self.retry_later(id, detail, delay_ms)?;
        self.conn
            .execute(
                "UPDATE inputs SET attempts = MAX(attempts - 1, 0) WHERE id = ?1",
                params![id],
            )
            .map_err(db_error(&self.path))?;
        Ok(())
    }

    /// A running input failed for a reason outside it: back to the queue, not to be taken
    /// again for `delay_ms`.
    pub fn retry_later(
        &mut self,
        id: i64,
        detail: &str,
        delay_ms: i64,
    ) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        step(&tx, &self.path, id, State::Queued, Some(detail), now)?;
        tx.execute(
            "UPDATE inputs SET not_before = ?1 WHERE id = ?2",
            params![now + delay_ms, id],
        )
        .map_err(&db)?;
        tx.commit().map_err(&db)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::journal;
    use super::*;

    fn arrival(key: &str, version: &str) -> Arrival {
        Arrival {
            source: "watch:/in".into(),
            key: key.into(),
            version: version.into(),
            size: 1,
            device: Some(7),
        }
    }

    #[test]
    fn arrivals_are_queued_once_and_known_afterwards() {
        let (_dir, mut j) = journal();
        let first = j
            .arrive(&[arrival("a.wav", "v1"), arrival("b.wav", "v1")])
            .unwrap();
        assert!(matches!(
            first[..],
            [Arrived::Queued(_), Arrived::Queued(_)]
        ));
        let again = j
            .arrive(&[arrival("a.wav", "v1"), arrival("a.wav", "v2")])
            .unwrap();
        assert!(matches!(again[0], Arrived::Known(_, State::Queued)));
        assert!(matches!(again[1], Arrived::Queued(_)));
        assert_eq!(j.in_state(State::Queued).unwrap().len(), 3);
        // The device is kept beside the version; an S3 object has none.
        let Arrived::Queued(id) = first[0] else {
            unreachable!()
        };
        assert_eq!(j.device(id).unwrap(), Some(7));
        let object = Arrival {
            device: None,
            ..arrival("in/c.wav", "etag:x")
        };
        let Arrived::Queued(id) = j.arrive(&[object]).unwrap()[0] else {
            panic!("not queued")
        };
        assert_eq!(j.device(id).unwrap(), None);
    }

    #[test]
    fn a_half_recorded_arrival_is_brought_forward() {
        let (_dir, mut j) = journal();
        let (id, _) = j.record_seen("watch:/in", "a.wav", "v1", 1).unwrap();
        assert_eq!(
            j.arrive(&[arrival("a.wav", "v1")]).unwrap(),
            vec![Arrived::Queued(id)]
        );
        let trail: Vec<String> = j.history(id).unwrap().into_iter().map(|e| e.1).collect();
        assert_eq!(trail, ["seen", "stable", "queued"]);
    }

    #[test]
    fn claims_take_the_oldest_due_input_once() {
        let (_dir, mut j) = journal();
        j.arrive(&[arrival("a.wav", "v"), arrival("b.wav", "v")])
            .unwrap();
        let a = j.claim_next().unwrap().unwrap();
        let b = j.claim_next().unwrap().unwrap();
        assert_eq!((a.key.as_str(), a.state), ("a.wav", State::Running));
        assert_eq!((b.key.as_str(), b.attempts), ("b.wav", 1));
        assert!(j.claim_next().unwrap().is_none());
    }

    #[test]
    fn a_retry_waits_for_its_backoff() {
        let (_dir, mut j) = journal();
        j.arrive(&[arrival("a.wav", "v")]).unwrap();
        let a = j.claim_next().unwrap().unwrap();
        j.retry_later(a.id, "write: disk full", 60_000).unwrap();
        assert!(
            j.claim_next().unwrap().is_none(),
            "taken before its backoff"
        );
        let due = j.next_due_in_ms().unwrap().unwrap();
        assert!(due > 50_000 && due <= 60_000, "{due}");
        j.retry_later(a.id, "x", 0).unwrap_err(); // queued, not running: refused
        let db = j
            .conn
            .execute("UPDATE inputs SET not_before = 0", [])
            .unwrap();
        assert_eq!(db, 1);
        let again = j.claim_next().unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (a.id, 2));
        assert_eq!(again.last_error.as_deref(), Some("write: disk full"));
        // Waiting out an outage does not use up attempts.
        j.wait_later(a.id, "s3 unreachable", 0).unwrap();
        let third = j.claim_next().unwrap().unwrap();
        assert_eq!(third.attempts, 2);
    }
}
