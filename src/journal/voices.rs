//! Known voices: voice prints enrolled by name (`hotfolderd speakers enroll`), and the
//! speakers of each diarized input (`speakers_from = "folder"` matches later inputs of the
//! same source against them). A print is the speaker model's embedding, unit length, kept as
//! little-endian f32, with the sha256 of the model that made it: prints of another model are
//! not compared.

use rusqlite::params;

use super::{begin, db_error, now_ms, Journal, JournalError};

pub(super) const VOICES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS voices (
    name         TEXT PRIMARY KEY,
    print        BLOB NOT NULL,
    model_sha256 TEXT NOT NULL,
    files        INTEGER NOT NULL,
    seconds      REAL NOT NULL,
    enrolled_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS input_voices (
    input_id     INTEGER NOT NULL REFERENCES inputs (id),
    source       TEXT NOT NULL,
    label        TEXT NOT NULL,
    print        BLOB NOT NULL,
    model_sha256 TEXT NOT NULL,
    seconds      REAL NOT NULL,
    PRIMARY KEY (input_id, label)
);
CREATE INDEX IF NOT EXISTS input_voices_source ON input_voices (source);
";

/// An enrolled voice.
#[derive(Debug, Clone, PartialEq)]
pub struct Voice {
    pub name: String,
    pub print: Vec<f32>,
    pub model_sha256: String,
    /// How many files and seconds of speech it was made from.
    pub files: i64,
    pub seconds: f64,
    pub enrolled_at: i64,
}

/// A speaker heard in an earlier input of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct HeardVoice {
    pub input_id: i64,
    pub label: String,
    pub print: Vec<f32>,
    pub seconds: f64,
}

pub fn to_blob(print: &[f32]) -> Vec<u8> {
    print.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn from_blob(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl Journal {
    /// Enrols `voice` under its name, replacing one of that name.
    pub fn enroll_voice(&mut self, voice: &Voice) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO voices (name, print, model_sha256, files, seconds, enrolled_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    voice.name,
                    to_blob(&voice.print),
                    voice.model_sha256,
                    voice.files,
                    voice.seconds,
                    now_ms()
                ],
            )
            .map(drop)
            .map_err(self.db())
    }

    /// Whether a voice of that name was enrolled (and is now removed).
    pub fn remove_voice(&mut self, name: &str) -> Result<bool, JournalError> {
        self.conn
            .execute("DELETE FROM voices WHERE name = ?1", params![name])
            .map(|n| n > 0)
            .map_err(self.db())
    }

    /// Every enrolled voice, by name.
    pub fn voices(&self) -> Result<Vec<Voice>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, print, model_sha256, files, seconds, enrolled_at FROM voices ORDER BY name",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Voice {
                    name: r.get(0)?,
                    print: from_blob(&r.get::<_, Vec<u8>>(1)?),
                    model_sha256: r.get(2)?,
                    files: r.get(3)?,
                    seconds: r.get(4)?,
                    enrolled_at: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.db())?;
        Ok(rows)
    }

    /// Keeps the speakers of diarized input `id` (from `source`) for later inputs to match.
    pub fn set_input_voices(
        &mut self,
        id: i64,
        source: &str,
        model_sha256: &str,
        heard: &[(String, Vec<f32>, f64)],
    ) -> Result<(), JournalError> {
        let tx = begin(&mut self.conn, &self.path)?;
        let db = db_error(&self.path);
        tx.execute("DELETE FROM input_voices WHERE input_id = ?1", params![id])
            .map_err(&db)?;
        for (label, print, seconds) in heard {
            tx.execute(
                "INSERT INTO input_voices (input_id, source, label, print, model_sha256, seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, source, label, to_blob(print), model_sha256, seconds],
            )
            .map_err(&db)?;
        }
        tx.commit().map_err(&db)
    }

    /// The speakers heard in `source`'s other inputs with prints of `model_sha256`, the most
    /// recent input first (at most `limit` prints).
    pub fn source_voices(
        &self,
        source: &str,
        model_sha256: &str,
        except: i64,
        limit: usize,
    ) -> Result<Vec<HeardVoice>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT input_id, label, print, seconds FROM input_voices
                 WHERE source = ?1 AND model_sha256 = ?2 AND input_id != ?3
                 ORDER BY input_id DESC LIMIT ?4",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![source, model_sha256, except, limit as i64], |r| {
                Ok(HeardVoice {
                    input_id: r.get(0)?,
                    label: r.get(1)?,
                    print: from_blob(&r.get::<_, Vec<u8>>(2)?),
                    seconds: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.db())?;
        Ok(rows)
    }

    /// The enrolled voice named `name`, if any.
    pub fn voice(&self, name: &str) -> Result<Option<Voice>, JournalError> {
        Ok(self.voices()?.into_iter().find(|v| v.name == name))
    }
}
