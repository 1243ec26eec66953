//! The journal: one SQLite file (WAL) that is the source of truth for every input ever seen.
//! Each input version has a row and a state; every state change is also appended to an
//! event table, the audit trail. Transitions are checked against the current state inside
//! the same statement, so a stale worker cannot move a row it no longer owns.
//!
//! ```text
//! seen → stable → queued → running → done
//!   │       │        │        ├──→ failed ──→ queued (retry)
//!   └───────┴────────┴────────┴──→ quarantined ──→ queued (retry)
//! running → queued (transient failure, or recovered after a crash)
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

mod dataset;
mod http;
mod models;
mod outbox;
mod progress;
mod queue;
mod recent;
mod retention;
mod state;
mod voices;

pub use dataset::{Corrected, Ledger, Run, RunState};
pub use http::{HttpArrived, HttpJob, CALLBACK_TARGET, HTTP_SOURCE};
pub use models::{Lineage, ModelRow, ModelState, RegistryError};
pub use outbox::{Notification, OutboxCounts, Subscription};
pub use progress::Running;
pub use recent::Recent;
pub use retention::Removal;

pub use queue::{Arrival, Arrived};
pub use state::State;
pub use voices::{HeardVoice, Voice};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("journal {path}: cannot create its directory: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("input {id}: cannot go from {from} to {to}")]
    Transition {
        id: i64,
        from: String,
        to: &'static str,
    },
    #[error("input {0} is not in the journal")]
    Missing(i64),
}

/// One input as the journal knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub id: i64,
    pub source: String,
    pub key: String,
    pub version: String,
    pub state: State,
    pub attempts: i64,
    pub sha256: Option<String>,
    pub last_error: Option<String>,
    pub outputs: Vec<String>,
}

/// One journal event, as the audit log copies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's id: the audit log's `seq`.
    pub seq: i64,
    pub at: i64,
    /// What it belongs to: one of the three.
    pub input_id: Option<i64>,
    pub run_id: Option<String>,
    pub model_id: Option<i64>,
    /// The input's source and key; `dataset:NAME` and the run id; `registry` and the sha256.
    pub source: String,
    pub key: String,
    pub event: String,
    pub detail: Option<String>,
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: r.get(0)?,
        at: r.get(1)?,
        input_id: r.get(2)?,
        run_id: r.get(3)?,
        model_id: r.get(4)?,
        source: r.get(5)?,
        key: r.get(6)?,
        event: r.get(7)?,
        detail: r.get(8)?,
    })
}

/// Records an event of a training run or of a model inside `tx` (one of the two given).
fn record_event(
    tx: &rusqlite::Connection,
    run_id: Option<&str>,
    model_id: Option<i64>,
    at: i64,
    event: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO events (run_id, model_id, at, state, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![run_id, model_id, at, event, detail],
    )
    .map(drop)
}

pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

/// The events table (schema 9): an event belongs to an input, a training run or a model.
macro_rules! events_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (
    id       INTEGER PRIMARY KEY,
    input_id INTEGER REFERENCES inputs (id),
    run_id   TEXT,
    model_id INTEGER,
    at       INTEGER NOT NULL,
    state    TEXT NOT NULL,
    detail   TEXT,
    CHECK (input_id IS NOT NULL OR run_id IS NOT NULL OR model_id IS NOT NULL)
);"
        )
    };
}

/// How the `done` event of a skipped input begins.
const SKIPPED: &str = "skipped: ";

const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS inputs (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    key         TEXT NOT NULL,
    version     TEXT NOT NULL,
    size        INTEGER,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    sha256      TEXT,
    last_error  TEXT,
    error_stage TEXT,
    outputs     TEXT NOT NULL DEFAULT '[]',
    seen_at     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    not_before  INTEGER NOT NULL DEFAULT 0,
    result      TEXT,
    input_removed_at    INTEGER,
    outputs_removed_at  INTEGER,
    dedup_key   TEXT,
    device      INTEGER,
    UNIQUE (source, key, version)
);
CREATE INDEX IF NOT EXISTS inputs_state ON inputs (state);
CREATE INDEX IF NOT EXISTS inputs_sha256 ON inputs (sha256);
",
    events_table!("events"),
    "
CREATE INDEX IF NOT EXISTS events_input ON events (input_id);
CREATE TABLE IF NOT EXISTS dataset_inputs (
    dataset         TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    state           TEXT NOT NULL,
    manifest_offset INTEGER NOT NULL,
    seconds         REAL NOT NULL DEFAULT 0,
    segments        INTEGER NOT NULL DEFAULT 0,
    source          TEXT NOT NULL,
    at              INTEGER NOT NULL,
    synced          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset, sha256)
);
CREATE TABLE IF NOT EXISTS datasets (
    name            TEXT PRIMARY KEY,
    total_seconds   REAL NOT NULL DEFAULT 0,
    new_seconds     REAL NOT NULL DEFAULT 0,
    last_run_start  INTEGER
);
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    dataset     TEXT NOT NULL,
    state       TEXT NOT NULL,
    seconds     REAL NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    pid         INTEGER,
    detail      TEXT,
    upload      TEXT
);
CREATE INDEX IF NOT EXISTS runs_dataset ON runs (dataset, state);
CREATE TABLE IF NOT EXISTS dataset_corrections (
    id          INTEGER PRIMARY KEY,
    dataset     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    file        TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    pieces      INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    unused_cues INTEGER NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dataset_corrections_input ON dataset_corrections (sha256);
"
);

/// Notifications (schema 4). The outbox is filled by triggers, inside the very transaction
/// that records an input's final state or a training run's start and end, so no code path
/// can finish something without its notifications, and a crash cannot separate the two.
/// `subscriptions` mirrors the configured `[[notify]]` targets (source '' = every source).
const OUTBOX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subscriptions (
    target  TEXT NOT NULL,
    event   TEXT NOT NULL,
    source  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (target, event, source)
);
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY,
    delivery    TEXT NOT NULL UNIQUE,
    target      TEXT NOT NULL,
    event       TEXT NOT NULL,
    input_id    INTEGER,
    run_id      TEXT,
    model_id    INTEGER,
    created_at  INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    sent_at     INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS outbox_input AFTER INSERT ON events
WHEN NEW.state IN ('done', 'failed', 'quarantined', 'cancelled')
BEGIN
    INSERT INTO outbox (delivery, target, event, input_id, created_at, next_at)
    SELECT lower(hex(randomblob(16))), s.target, NEW.state, NEW.input_id, NEW.at, NEW.at
    FROM subscriptions s
    WHERE s.event = NEW.state
      AND (s.source = '' OR s.source = (SELECT source FROM inputs WHERE id = NEW.input_id));
END;
CREATE TRIGGER IF NOT EXISTS outbox_run_started AFTER INSERT ON runs
BEGIN
    INSERT INTO outbox (delivery, target, event, run_id, created_at, next_at)
    SELECT lower(hex(randomblob(16))), s.target, 'training_started', NEW.id, NEW.started_at,
           NEW.started_at
    FROM subscriptions s WHERE s.event = 'training_started';
END;
CREATE TRIGGER IF NOT EXISTS outbox_run_finished AFTER UPDATE OF state ON runs
WHEN OLD.state = 'running' AND NEW.state != 'running'
BEGIN
    INSERT INTO outbox (delivery, target, event, run_id, created_at, next_at, state)
    SELECT lower(hex(randomblob(16))), s.target, 'training_finished', NEW.id,
           COALESCE(NEW.ended_at, 0), COALESCE(NEW.ended_at, 0),
           CASE WHEN NEW.upload = 'pending' THEN 'held' ELSE 'pending' END
    FROM subscriptions s WHERE s.event = 'training_finished';
END;
";

fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Db {
        path: path.clone(),
        source,
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Starts a write transaction now (not at its first write), so a read-then-write inside it
/// cannot be invalidated by another connection.
/// Marks input `id`'s version retired (`<version> retired@<now>`) with a `retired` event
/// saying `why`, inside `tx`.
fn retire(
    tx: &Transaction<'_>,
    path: &Path,
    id: i64,
    why: &str,
    now: i64,
) -> Result<(), JournalError> {
    let db = db_error(path);
    tx.execute(
        "UPDATE inputs SET version = version || ' retired@' || ?1, updated_at = ?1
         WHERE id = ?2 AND version NOT LIKE '% retired@%'",
        params![now, id],
    )
    .map_err(&db)?;
    tx.execute(
        "INSERT INTO events (input_id, at, state, detail) VALUES (?1, ?2, 'retired', ?3)",
        params![id, now, why],
    )
    .map_err(&db)?;
    Ok(())
}

fn begin<'c>(conn: &'c mut Connection, path: &Path) -> Result<Transaction<'c>, JournalError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error(path))
}

/// Records one input version inside `tx` if it is new (with its `seen` event): returns its
/// id, its state, and whether it was new.
fn see(
    tx: &Transaction<'_>,
    path: &Path,
    source: &str,
    key: &str,
    version: &str,
    size: u64,
    now: i64,
) -> Result<(i64, State, bool), JournalError> {
    let db = db_error(path);
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO inputs (source, key, version, size, state, seen_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'seen', ?5, ?5)",
        )
        .and_then(|mut s| s.execute(params![source, key, version, size as i64, now]))
        .map_err(&db)?;
    let (id, state): (i64, String) = tx
        .prepare_cached(
            "SELECT id, state FROM inputs WHERE source = ?1 AND key = ?2 AND version = ?3",
        )
        .and_then(|mut s| {
            s.query_row(params![source, key, version], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(&db)?;
    if inserted == 1 {
        tx.execute(
            "INSERT INTO events (input_id, at, state, detail) VALUES (?1, ?2, 'seen', NULL)",
            params![id, now],
        )
        .map_err(&db)?;
    }
    Ok((
        id,
        State::parse(&state).unwrap_or(State::Failed),
        inserted == 1,
    ))
}

/// The schema version this code writes. 1 → 2 added `not_before` (retry backoff); 2 → 3
/// added the dataset tables (created by [`SCHEMA`] on open); 3 → 4 added `inputs.result`,
/// the retention marks and the notification outbox ([`OUTBOX_SCHEMA`]); 4 → 5 added
/// `inputs.dedup_key` (content, model and options: see `job::dedup_key`); 5 → 6 added
/// `inputs.device` (a file's `st_dev`, checked with its inode when it is opened); 6 → 7
/// added `dataset_corrections` (created by [`SCHEMA`] on open, like every table); 7 → 8
/// added the model registry (`models`) and `outbox.model_id` (`model_promoted`); 8 → 9 let
/// an event belong to a training run or a model instead of an input (`events.run_id`,
/// `events.model_id`), so runs and promotions reach the audit log and `hotfolderd history`,
/// and added `runs.upload`: a run of an `s3://` dataset holds its `training_finished`
/// (outbox state `held`) until its folder is complete in S3, and `models.removed_at`
/// (`keep_candidates`); 9 → 10 lets `[[notify]]` targets subscribe to `cancelled` (the
/// `outbox_input` trigger is made again).
const SCHEMA_VERSION: i64 = 10;

/// Brings a journal written by an older hotfolderd up to [`SCHEMA_VERSION`]. A fresh file
/// (version 0) already has the current tables from [`SCHEMA`].
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let user_version = |c: &Connection| c.pragma_query_value(None, "user_version", |r| r.get(0));
    // A current file needs no write at all: `hotfolderd status` beside a busy daemon must not
    // compete for the write lock.
    if user_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    // One transaction: a crash mid-way leaves the file as it was, not half migrated. It takes
    // the write lock up front (IMMEDIATE), where the busy timeout applies: a deferred one that
    // read first and then wrote fails at once with "database is locked" when another
    // connection committed in between (WAL cannot upgrade a stale snapshot).
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let conn: &Connection = &tx;
    let version: i64 = user_version(conn)?;
    if version == 1 {
        conn.execute_batch("ALTER TABLE inputs ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;")?;
    }
    if (1..4).contains(&version) {
        conn.execute_batch(
            "ALTER TABLE inputs ADD COLUMN result TEXT;
             ALTER TABLE inputs ADD COLUMN input_removed_at INTEGER;
             ALTER TABLE inputs ADD COLUMN outputs_removed_at INTEGER;",
        )?;
    }
    if (1..5).contains(&version) {
        // Inputs finished before have no key, so they are never reused as twins: the next
        // copy of their content is transcribed once more, with the model of the day.
        conn.execute_batch("ALTER TABLE inputs ADD COLUMN dedup_key TEXT;")?;
    }
    if (1..6).contains(&version) {
        // Inputs journaled before have no device: their inode alone is checked.
        conn.execute_batch("ALTER TABLE inputs ADD COLUMN device INTEGER;")?;
    }
    if (4..8).contains(&version) {
        // The outbox exists from version 4 on; before, OUTBOX_SCHEMA creates it whole.
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN model_id INTEGER;")?;
    }
    if (3..9).contains(&version) {
        // `runs` exists from version 3 on; before, SCHEMA creates it whole.
        conn.execute_batch("ALTER TABLE runs ADD COLUMN upload TEXT;")?;
    }
    if version == 8 {
        // `models` exists from version 8 on; before, MODELS_SCHEMA creates it whole.
        conn.execute_batch("ALTER TABLE models ADD COLUMN removed_at INTEGER;")?;
    }
    if (4..9).contains(&version) {
        // Made again by OUTBOX_SCHEMA, right after this, with the `held` state.
        conn.execute_batch("DROP TRIGGER IF EXISTS outbox_run_finished;")?;
    }
    if (4..10).contains(&version) {
        // Made again by OUTBOX_SCHEMA, right after this, with `cancelled`.
        conn.execute_batch("DROP TRIGGER IF EXISTS outbox_input;")?;
    }
    if (1..9).contains(&version) {
        // SQLite cannot make a column nullable in place: the table is rebuilt, ids kept (they
        // are the audit log's `seq`). Its index and trigger go with the old table and are
        // made again (the trigger by OUTBOX_SCHEMA, right after this).
        conn.execute_batch(concat!(
            events_table!("events_v9"),
            "INSERT INTO events_v9 (id, input_id, at, state, detail)
                 SELECT id, input_id, at, state, detail FROM events;
             DROP TABLE events;
             ALTER TABLE events_v9 RENAME TO events;
             CREATE INDEX events_input ON events (input_id);",
        ))?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS inputs_dedup_key ON inputs (dedup_key);
         CREATE INDEX IF NOT EXISTS events_run ON events (run_id) WHERE run_id IS NOT NULL;
         CREATE INDEX IF NOT EXISTS events_model ON events (model_id) WHERE model_id IS NOT NULL;",
    )?;
    if version < SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()
}

/// Moves input `id` to `to` inside `tx`, if `to` is allowed from its current state: the row
/// and an audit event change together. Entering `running` counts an attempt; a reason given
/// for `failed`, `quarantined`, `queued` or `cancelled` is kept as the row's last error.
fn step(
    tx: &Transaction<'_>,
    path: &Path,
    id: i64,
    to: State,
    detail: Option<&str>,
    now: i64,
) -> Result<(), JournalError> {
    let db = db_error(path);
    let current: Option<String> = tx
        .query_row("SELECT state FROM inputs WHERE id = ?1", params![id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(&db)?;
    let current = current
        .map(|s| State::parse(&s).unwrap_or(State::Failed))
        .ok_or(JournalError::Missing(id))?;
    if !current.next().contains(&to) {
        return Err(JournalError::Transition {
            id,
            from: current.as_str().to_string(),
            to: to.as_str(),
        });
    }
    let attempts_inc = i64::from(to == State::Running);
    let error = matches!(
        to,
        State::Failed | State::Quarantined | State::Queued | State::Cancelled
    )
    .then_some(detail)
    .flatten();
    tx.execute(
        "UPDATE inputs SET state = ?1, attempts = attempts + ?2, updated_at = ?3,
                last_error = COALESCE(?4, last_error)
         WHERE id = ?5",
        params![to.as_str(), attempts_inc, now, error, id],
    )
    .map_err(&db)?;
    tx.execute(
        "INSERT INTO events (input_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
        params![id, now, to.as_str(), detail],
    )
    .map_err(&db)?;
    Ok(())
}

/// How long a statement waits for another connection's lock (the daemon's, or a command's
/// run beside it) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Puts the file in WAL mode. Switching needs every other connection gone, and SQLite answers
/// "database is locked" at once rather than through the busy timeout, so two processes
/// opening a fresh journal together (the daemon starting, `hotfolderd status` beside it)
/// retry here until one of them has switched it.
fn use_wal(conn: &Connection, timeout: Duration) -> rusqlite::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        let busy = match conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            // Still another mode: someone else held the file.
            Ok(mode) => rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some(format!(
                    "could not switch the journal from {mode} to WAL mode"
                )),
            ),
            Err(e) if is_busy(&e) => e,
            Err(e) => return Err(e),
        };
        if Instant::now() >= deadline {
            return Err(busy);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`, in WAL mode with synchronous=FULL:
    /// a committed transition survives a crash or power cut.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::Dir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let db = |source| JournalError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        use_wal(&conn, BUSY_TIMEOUT).map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        migrate(&conn).map_err(db)?;
        conn.execute_batch(OUTBOX_SCHEMA).map_err(db)?;
        conn.execute_batch(models::MODELS_SCHEMA).map_err(db)?;
        conn.execute_batch(http::HTTP_SCHEMA).map_err(db)?;
        conn.execute_batch(progress::PROGRESS_SCHEMA).map_err(db)?;
        conn.execute_batch(voices::VOICES_SCHEMA).map_err(db)?;
        Ok(Journal {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> JournalError {
        db_error(&self.path)
    }

    /// Records an input version (idempotent): returns its id and whether it is new.
    pub fn record_seen(
        &mut self,
        source: &str,
        key: &str,
        version: &str,
        size: u64,
    ) -> Result<(i64, bool), JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let (id, _, new) = see(&tx, &self.path, source, key, version, size, now)?;
        tx.commit().map_err(&db)?;
        Ok((id, new))
    }

    /// Moves input `id` to `to` if that is allowed from its current state, recording `detail`
    /// (a reason, for failures) in the row and the audit trail, atomically.
    pub fn transition(
        &mut self,
        id: i64,
        to: State,
        detail: Option<&str>,
    ) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        step(&tx, &self.path, id, to, detail, now_ms())?;
        tx.commit().map_err(&db)
    }

    /// The object at `source`/`key` was deleted: its finished versions are renamed
    /// (`<version> retired@<ms>`, with a `retired` event saying `why`), so an upload of the
    /// same bytes later is a new input rather than "already done". Returns how many.
    pub fn retire_key(
        &mut self,
        source: &str,
        key: &str,
        why: &str,
    ) -> Result<usize, JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        let ids: Vec<i64> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id FROM inputs WHERE source = ?1 AND key = ?2
                     AND state IN ('done', 'failed', 'quarantined') AND version NOT LIKE '% retired@%'",
                )
                .map_err(&db)?;
            let rows = stmt
                .query_map(params![source, key], |r| r.get(0))
                .map_err(&db)?;
            rows.collect::<Result<_, _>>().map_err(&db)?
        };
        for &id in &ids {
            retire(&tx, &self.path, id, why, now)?;
        }
        tx.commit().map_err(&db)?;
        Ok(ids.len())
    }

    pub fn set_sha256(&mut self, id: i64, sha256: &str) -> Result<(), JournalError> {
        self.conn
            .execute(
                "UPDATE inputs SET sha256 = ?1 WHERE id = ?2",
                params![sha256, id],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// The device (`st_dev`) input `id`'s file was on when it was journaled, if kept.
    pub fn device(&self, id: i64) -> Result<Option<u64>, JournalError> {
        self.conn
            .query_row(
                "SELECT device FROM inputs WHERE id = ?1",
                params![id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|d| d.flatten().map(|d| d as u64))
            .map_err(self.db())
    }

    /// Records input `id`'s content hash and its dedup key (content, model and the options
    /// that change the text).
    pub fn set_dedup_key(
        &mut self,
        id: i64,
        sha256: &str,
        dedup_key: &str,
    ) -> Result<(), JournalError> {
        self.conn
            .execute(
                "UPDATE inputs SET sha256 = ?1, dedup_key = ?2 WHERE id = ?3",
                params![sha256, dedup_key, id],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// Up to `limit` `done` inputs with this dedup key, newest first: their outputs are what
    /// this model and these options made of the same content. Retired inputs (their object
    /// was deleted) and inputs whose outputs retention removed are left out.
    pub fn done_with_dedup_key(
        &self,
        dedup_key: &str,
        limit: usize,
    ) -> Result<Vec<Input>, JournalError> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT id FROM inputs WHERE dedup_key = ?1 AND state = 'done'
                   AND outputs_removed_at IS NULL AND version NOT LIKE '% retired@%'
                 ORDER BY id DESC LIMIT ?2",
            )
            .and_then(|mut s| {
                s.query_map(params![dedup_key, limit as i64], |r| r.get(0))?
                    .collect()
            })
            .map_err(self.db())?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.get(id)?);
        }
        Ok(out)
    }

    /// Marks a running input done with the outputs it produced and what the transcription
    /// found (`result`: audio seconds, language, model; for notifications), in one
    /// transaction.
    pub fn finish(
        &mut self,
        id: i64,
        outputs: &[String],
        result: Option<&serde_json::Value>,
    ) -> Result<(), JournalError> {
        let detail = format!("outputs: {}", outputs.join(", "));
        self.finish_with(id, outputs, result, &detail)
    }

    /// Marks a running input done with no outputs because its output declined it (a media
    /// library's film that has subtitles): the `done` event says `skipped: WHY`. The final
    /// event survives compaction, so `retry` can still tell a skipped input.
    pub fn finish_skipped(
        &mut self,
        id: i64,
        why: &str,
        result: Option<&serde_json::Value>,
    ) -> Result<(), JournalError> {
        self.finish_with(id, &[], result, &format!("{SKIPPED}{why}"))
    }

    /// Whether input `id` ended skipped (`finish_skipped`).
    pub fn was_skipped(&self, id: i64) -> Result<bool, JournalError> {
        let detail: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT detail FROM events WHERE input_id = ?1 AND state = 'done'
                 ORDER BY id DESC LIMIT 1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        Ok(detail.flatten().is_some_and(|d| d.starts_with(SKIPPED)))
    }

    /// Retires input `id` alone (`<version> retired@<ms>`, with a `retired` event saying
    /// `why`): the same version arriving again is a new input.
    pub fn retire_id(&mut self, id: i64, why: &str) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let now = now_ms();
        let tx = begin(&mut self.conn, &self.path)?;
        retire(&tx, &self.path, id, why, now)?;
        tx.commit().map_err(&db)
    }

    fn finish_with(
        &mut self,
        id: i64,
        outputs: &[String],
        result: Option<&serde_json::Value>,
        detail: &str,
    ) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let json = serde_json::to_string(outputs).unwrap_or_else(|_| "[]".into());
        let result = result.map(|r| r.to_string());
        let tx = begin(&mut self.conn, &self.path)?;
        tx.execute(
            "UPDATE inputs SET outputs = ?1, result = COALESCE(?3, result) WHERE id = ?2",
            params![json, id, result],
        )
        .map_err(&db)?;
        step(&tx, &self.path, id, State::Done, Some(detail), now_ms())?;
        tx.commit().map_err(&db)
    }

    /// Just the state of input `id` (the transition check needs nothing else).
    pub fn state(&self, id: i64) -> Result<Option<State>, JournalError> {
        let state: Option<String> = self
            .conn
            .query_row("SELECT state FROM inputs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.db())?;
        Ok(state.map(|s| State::parse(&s).unwrap_or(State::Failed)))
    }

    pub fn get(&self, id: i64) -> Result<Option<Input>, JournalError> {
        self.conn
            .query_row(
                "SELECT id, source, key, version, state, attempts, sha256, last_error, outputs
                 FROM inputs WHERE id = ?1",
                params![id],
                |r| {
                    let state: String = r.get(4)?;
                    let outputs: String = r.get(8)?;
                    Ok(Input {
                        id: r.get(0)?,
                        source: r.get(1)?,
                        key: r.get(2)?,
                        version: r.get(3)?,
                        state: State::parse(&state).unwrap_or(State::Failed),
                        attempts: r.get(5)?,
                        sha256: r.get(6)?,
                        last_error: r.get(7)?,
                        outputs: serde_json::from_str(&outputs).unwrap_or_default(),
                    })
                },
            )
            .optional()
            .map_err(self.db())
    }

    /// After a crash: inputs left `running` go back to `queued` (their outputs were never
    /// recorded, so they are redone; sinks overwrite atomically). Returns how many.
    pub fn recover(&mut self) -> Result<usize, JournalError> {
        // How far the last run's jobs were means nothing now.
        self.clear_all_progress()?;
        let ids = self.in_state(State::Running)?;
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        let now = now_ms();
        for id in &ids {
            step(
                &tx,
                &self.path,
                *id,
                State::Queued,
                Some("interrupted (daemon stopped or crashed); requeued"),
                now,
            )?;
        }
        tx.commit().map_err(&db)?;
        Ok(ids.len())
    }

    /// Ids of inputs in `state`, oldest first.
    pub fn in_state(&self, state: State) -> Result<Vec<i64>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM inputs WHERE state = ?1 ORDER BY id")
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![state.as_str()], |r| r.get(0))
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// How many inputs are in each state.
    /// Proves the journal can still take a write: takes the write lock and lets it go.
    /// Blocks while another connection holds it (up to the busy timeout).
    pub fn probe(&mut self) -> Result<(), JournalError> {
        let db = db_error(&self.path);
        let tx = begin(&mut self.conn, &self.path)?;
        tx.rollback().map_err(&db)
    }

    /// (source, state, count) for every pair with inputs.
    pub fn counts_by_source(&self) -> Result<Vec<(String, String, i64)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, state, COUNT(*) FROM inputs GROUP BY source, state")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    pub fn counts(&self) -> Result<Vec<(State, i64)>, JournalError> {
        State::ALL
            .iter()
            .map(|s| {
                self.conn
                    .query_row(
                        "SELECT COUNT(*) FROM inputs WHERE state = ?1",
                        params![s.as_str()],
                        |r| r.get(0),
                    )
                    .map(|n| (*s, n))
                    .map_err(self.db())
            })
            .collect()
    }

    /// Ids of every failed or quarantined input.
    pub fn failed_ids(&self) -> Result<Vec<i64>, JournalError> {
        let mut ids = self.in_state(State::Failed)?;
        ids.extend(self.in_state(State::Quarantined)?);
        ids.sort_unstable();
        Ok(ids)
    }

    /// The latest failed or quarantined inputs: (id, source, key, reason), newest first.
    pub fn recent_failures(
        &self,
        n: usize,
    ) -> Result<Vec<(i64, String, String, String)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, source, key, COALESCE(last_error, '') FROM inputs
                 WHERE state IN ('failed', 'quarantined') ORDER BY updated_at DESC, id DESC LIMIT ?1",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![n as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Adds an event to input `id`'s trail without changing its state (e.g. "moved").
    pub fn note(&mut self, id: i64, event: &str, detail: &str) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT INTO events (input_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
                params![id, now_ms(), event, detail],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// Ids of the inputs with this key (every version), from `source` or any, oldest first.
    pub fn inputs_named(&self, source: Option<&str>, key: &str) -> Result<Vec<i64>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id FROM inputs WHERE key = ?2 AND (?1 IS NULL OR source = ?1) ORDER BY id",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![source, key], |r| r.get(0))
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Every output journaled for `key` of `source`, under any of its versions, with when
    /// its input finished (ms): files the daemon wrote itself, as long as they have not
    /// been written since (a media library's subtitles are then not someone else's).
    pub fn outputs_of_key(
        &self,
        source: &str,
        key: &str,
    ) -> Result<Vec<(String, i64)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT i.outputs, COALESCE((SELECT MAX(at) FROM events e
                     WHERE e.input_id = i.id AND e.state = 'done'), i.updated_at)
                 FROM inputs i WHERE i.source = ?1 AND i.key = ?2",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![source, key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(self.db())?;
        let mut all = Vec::new();
        for row in rows {
            let (json, at) = row.map_err(self.db())?;
            let listed: Vec<String> = serde_json::from_str(&json).unwrap_or_default();
            all.extend(listed.into_iter().map(|o| (o, at)));
        }
        Ok(all)
    }

    /// The keys of `source` that start with `prefix`, each with the id it was first
    /// journaled under, oldest first (for naming outputs: `job::output_name`).
    pub fn keys_starting_with(
        &self,
        source: &str,
        prefix: &str,
    ) -> Result<Vec<(String, i64)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, MIN(id) AS first FROM inputs
                 WHERE source = ?1 AND key >= ?2 AND key < ?3 AND substr(key, 1, length(?2)) = ?2
                 GROUP BY key ORDER BY first",
            )
            .map_err(self.db())?;
        // The range lets SQLite use the (source, key, version) index; the last code point
        // sorts after every key that starts with the prefix.
        let end = format!("{prefix}\u{10FFFF}");
        let rows = stmt
            .query_map(params![source, prefix, end], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Events after `seq` (the audit log's copy position), oldest first, each with what it
    /// belongs to: an input (its source and key), a training run (`dataset:NAME`, the run
    /// id) or a model (`registry`, its sha256).
    pub fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<Event>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.id, e.at, e.input_id, e.run_id, e.model_id,
                        COALESCE(i.source, 'dataset:' || r.dataset, 'registry'),
                        COALESCE(i.key, e.run_id, m.sha256, ''), e.state, e.detail
                 FROM events e
                 LEFT JOIN inputs i ON i.id = e.input_id
                 LEFT JOIN runs r ON r.id = e.run_id
                 LEFT JOIN models m ON m.id = e.model_id
                 WHERE e.id > ?1 ORDER BY e.id LIMIT ?2",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![seq, limit as i64], event_row)
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// The story of training runs and of the model registry (every event that belongs to no
    /// input), oldest first; only `run_id`'s, and its candidate model's, when given.
    pub fn training_events(&self, run_id: Option<&str>) -> Result<Vec<Event>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.id, e.at, e.input_id, e.run_id, e.model_id,
                        COALESCE('dataset:' || r.dataset, 'registry'),
                        COALESCE(e.run_id, m.sha256, ''), e.state, e.detail
                 FROM events e
                 LEFT JOIN runs r ON r.id = e.run_id
                 LEFT JOIN models m ON m.id = e.model_id
                 WHERE e.input_id IS NULL
                   AND (?1 IS NULL OR e.run_id = ?1 OR m.run_id = ?1)
                 ORDER BY e.id",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![run_id], event_row)
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// A number kept in the journal under `name` (0 when unset).
    pub fn meta(&self, name: &str) -> Result<i64, JournalError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(self.db())
    }

    pub fn set_meta(&mut self, name: &str, value: i64) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// The audit trail of one input: (unix ms, state, detail).
    pub fn history(&self, id: i64) -> Result<Vec<(i64, String, Option<String>)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, state, detail FROM events WHERE input_id = ?1 ORDER BY id")
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("state/journal.sqlite")).unwrap();
        (dir, j)
    }

    #[test]
    fn an_input_walks_the_happy_path_and_leaves_a_trail() {
        let (_dir, mut j) = journal();
        let (id, new) = j.record_seen("watch:/in", "a.wav", "100:1:7", 100).unwrap();
        assert!(new);
        for s in [State::Stable, State::Queued, State::Running] {
            j.transition(id, s, None).unwrap();
        }
        j.set_dedup_key(id, "abc", "abc+model").unwrap();
        j.finish(id, &["/out/a.json".into()], None).unwrap();
        let input = j.get(id).unwrap().unwrap();
        assert_eq!((input.state, input.attempts), (State::Done, 1));
        assert_eq!(input.outputs, vec!["/out/a.json".to_string()]);
        let states: Vec<String> = j.history(id).unwrap().into_iter().map(|e| e.1).collect();
        assert_eq!(states, ["seen", "stable", "queued", "running", "done"]);
        assert_eq!(
            j.done_with_dedup_key("abc+model", 3)
                .unwrap()
                .first()
                .map(|i| i.id),
            Some(id)
        );
        assert!(j
            .done_with_dedup_key("abc+other model", 3)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_retired_key_is_new_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let (id, _) = j.record_seen("s", "k", "etag:1", 1).unwrap();
        assert_eq!(
            j.retire_key("s", "k", "deleted").unwrap(),
            0,
            "not final yet"
        );
        for to in [State::Stable, State::Queued, State::Running] {
            j.transition(id, to, None).unwrap();
        }
        j.finish(id, &[], None).unwrap();
        assert!(!j.record_seen("s", "k", "etag:1", 1).unwrap().1);
        assert_eq!(j.retire_key("s", "k", "deleted").unwrap(), 1);
        assert_eq!(j.retire_key("s", "k", "deleted").unwrap(), 0, "once");
        let (again, new) = j.record_seen("s", "k", "etag:1", 1).unwrap();
        assert!(new && again != id);
        let history = j.history(id).unwrap();
        assert_eq!(history.last().unwrap().1, "retired");
    }

    #[test]
    fn seeing_the_same_version_again_is_idempotent_and_a_new_version_is_new() {
        let (_dir, mut j) = journal();
        let (a, new_a) = j.record_seen("watch:/in", "a.wav", "v1", 1).unwrap();
        let (b, new_b) = j.record_seen("watch:/in", "a.wav", "v1", 1).unwrap();
        let (c, new_c) = j.record_seen("watch:/in", "a.wav", "v2", 1).unwrap();
        assert_eq!(
            (a == b, new_a, new_b, new_c, a == c),
            (true, true, false, true, false)
        );
    }

    #[test]
    fn illegal_transitions_are_refused_and_change_nothing() {
        let (_dir, mut j) = journal();
        let (id, _) = j.record_seen("s", "k", "v", 1).unwrap();
        assert!(matches!(
            j.transition(id, State::Done, None),
            Err(JournalError::Transition { .. })
        ));
        assert!(matches!(
            j.transition(99, State::Stable, None),
            Err(JournalError::Missing(99))
        ));
        assert_eq!(j.get(id).unwrap().unwrap().state, State::Seen);
        // A failure keeps its reason; retry re-queues it.
        j.transition(id, State::Failed, Some("not audio: text file"))
            .unwrap();
        assert_eq!(
            j.get(id).unwrap().unwrap().last_error.as_deref(),
            Some("not audio: text file")
        );
        j.transition(id, State::Queued, Some("retry requested"))
            .unwrap();
    }

    #[test]
    fn a_restart_finds_everything_and_requeues_interrupted_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let id = {
            let mut j = Journal::open(&path).unwrap();
            let (id, _) = j.record_seen("s", "k", "v", 1).unwrap();
            for s in [State::Stable, State::Queued, State::Running] {
                j.transition(id, s, None).unwrap();
            }
            id
            // Dropped mid-job, as a crash would leave it.
        };
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.recover().unwrap(), 1);
        let input = j.get(id).unwrap().unwrap();
        assert_eq!((input.state, input.attempts), (State::Queued, 1));
        assert_eq!(j.in_state(State::Queued).unwrap(), vec![id]);
        let counts = j.counts().unwrap();
        assert!(counts.contains(&(State::Queued, 1)) && counts.contains(&(State::Done, 0)));
    }

    #[test]
    fn a_fresh_journal_opened_by_several_at_once_opens_for_all() {
        // `hotfolderd status` run while the daemon started: both created the file, and one
        // migration's deferred read-then-write failed with "database is locked".
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("journal.sqlite");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        Journal::open(&path).map(drop)
                    })
                })
                .collect();
            for opener in openers {
                opener.join().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn a_version_1_journal_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            let v1 = SCHEMA
                .replace("    not_before  INTEGER NOT NULL DEFAULT 0,\n", "")
                .replace("    result      TEXT,\n", "")
                .replace("    input_removed_at    INTEGER,\n", "")
                .replace("    outputs_removed_at  INTEGER,\n", "")
                .replace("    dedup_key   TEXT,\n", "")
                .replace("    device      INTEGER,\n", "");
            assert!(!v1.contains("dedup_key") && !v1.contains("device"));
            conn.execute_batch(&v1).unwrap();
            conn.execute_batch("PRAGMA user_version = 1;").unwrap();
            conn.execute(
                "INSERT INTO inputs (source, key, version, state, seen_at, updated_at)
                 VALUES ('s', 'k', 'v', 'queued', 0, 0)",
                [],
            )
            .unwrap();
        }
        let mut j = Journal::open(&path).unwrap();
        let version: i64 = j
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let input = j.claim_next().unwrap().unwrap();
        assert_eq!(input.key, "k");
        j.set_dedup_key(input.id, "abc", "abc+model").unwrap();
        assert_eq!(j.device(input.id).unwrap(), None);
    }

    #[test]
    fn a_version_8_journal_keeps_its_events_and_their_ids_when_events_gain_runs_and_models() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            let v8_events = "CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY,
    input_id INTEGER NOT NULL REFERENCES inputs (id),
    at       INTEGER NOT NULL,
    state    TEXT NOT NULL,
    detail   TEXT
);";
            let start = SCHEMA.find("CREATE TABLE IF NOT EXISTS events").unwrap();
            let end = start + SCHEMA[start..].find(");").unwrap() + 2;
            let v8 = format!("{}{v8_events}{}", &SCHEMA[..start], &SCHEMA[end..]).replace(
                "    detail      TEXT,\n    upload      TEXT\n",
                "    detail      TEXT\n",
            );
            assert!(!v8.contains("upload"));
            conn.execute_batch(&v8).unwrap();
            conn.execute_batch(OUTBOX_SCHEMA).unwrap();
            let v8_models = models::MODELS_SCHEMA.replace(
                "    served_at       INTEGER,\n    removed_at      INTEGER\n",
                "    served_at       INTEGER\n",
            );
            assert!(!v8_models.contains("removed_at"));
            conn.execute_batch(&v8_models).unwrap();
            conn.execute_batch(
                "PRAGMA user_version = 8;
                 INSERT INTO inputs (id, source, key, version, state, seen_at, updated_at)
                 VALUES (3, 's', 'k', 'v', 'running', 0, 0);
                 INSERT INTO events (id, input_id, at, state, detail) VALUES (41, 3, 5, 'seen', NULL);
                 INSERT INTO subscriptions (target, event) VALUES ('hook', 'done');",
            )
            .unwrap();
        }
        let mut j = Journal::open(&path).unwrap();
        let version: i64 = j
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let old = &j.events_after(0, 10).unwrap()[0];
        assert_eq!(
            (old.seq, old.input_id, old.key.as_str()),
            (41, Some(3), "k")
        );
        // The outbox trigger on events came back with the rebuilt table.
        j.transition(3, State::Done, None).unwrap();
        assert_eq!(j.outbox_counts().unwrap().pending, 1);
        j.run_start("r1", "d", 60.0).unwrap();
        let last = j.events_after(41, 10).unwrap();
        assert_eq!(last.last().unwrap().run_id.as_deref(), Some("r1"));
    }

    #[test]
    fn a_version_9_journal_lets_notify_targets_subscribe_to_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            let v9_outbox = OUTBOX_SCHEMA.replace("'quarantined', 'cancelled')", "'quarantined')");
            assert_ne!(v9_outbox, OUTBOX_SCHEMA);
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute_batch(&v9_outbox).unwrap();
            conn.execute_batch(models::MODELS_SCHEMA).unwrap();
            conn.execute_batch(
                "PRAGMA user_version = 9;
                 INSERT INTO inputs (id, source, key, version, state, seen_at, updated_at)
                 VALUES (3, 's', 'k', 'v', 'running', 0, 0);
                 INSERT INTO subscriptions (target, event) VALUES ('hook', 'cancelled');",
            )
            .unwrap();
        }
        let mut j = Journal::open(&path).unwrap();
        j.transition(3, State::Cancelled, Some("cancelled by request"))
            .unwrap();
        assert_eq!(j.outbox_counts().unwrap().pending, 1);
    }

    #[test]
    fn every_state_has_a_way_forward_or_is_final() {
        for s in State::ALL {
            let last = matches!(s, State::Done | State::Cancelled);
            assert_eq!(s.next().is_empty(), last, "{s:?}");
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
    }
}
