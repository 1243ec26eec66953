//! What the dashboard shows from the journal: the newest inputs with their state, and the
//! audio each source finished lately.

use rusqlite::params;

use super::{Journal, JournalError, State};

/// One input as the dashboard lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recent {
    pub id: i64,
    pub source: String,
    pub key: String,
    pub state: State,
    pub reason: Option<String>,
    pub outputs: Vec<String>,
    pub updated_at: i64,
}

impl Journal {
    /// The `limit` inputs changed last, newest first.
    pub fn recent_inputs(&self, limit: usize) -> Result<Vec<Recent>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, source, key, state, last_error, outputs, updated_at FROM inputs
                 ORDER BY updated_at DESC, id DESC LIMIT ?1",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                let state: String = r.get(3)?;
                let outputs: String = r.get(5)?;
                Ok(Recent {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    key: r.get(2)?,
                    state: State::parse(&state).unwrap_or(State::Failed),
                    reason: r.get(4)?,
                    outputs: serde_json::from_str(&outputs).unwrap_or_default(),
                    updated_at: r.get(6)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Seconds of audio each source finished (done) since `since_ms`.
    pub fn audio_done_since(&self, since_ms: i64) -> Result<Vec<(String, f64)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT source, SUM(COALESCE(json_extract(result, '$.audio_seconds'), 0))
                 FROM inputs WHERE state = 'done' AND updated_at >= ?1
                 GROUP BY source ORDER BY source",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![since_ms], |r| Ok((r.get(0)?, r.get(1)?)))
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
    fn recent_inputs_and_the_audio_each_source_finished() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        for (source, key) in [
            ("watch:/a", "1.wav"),
            ("watch:/a", "2.wav"),
            ("http:api", "x"),
        ] {
            j.arrive(&[Arrival {
                source: source.into(),
                key: key.into(),
                version: "1".into(),
                size: 1,
                device: None,
            }])
            .unwrap();
            let id = j.claim_next().unwrap().unwrap().id;
            let result = serde_json::json!({"audio_seconds": 90.0});
            j.finish(id, &[format!("/out/{key}.json")], Some(&result))
                .unwrap();
        }
        let recent = j.recent_inputs(2).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(
            (recent[0].key.as_str(), recent[0].state),
            ("x", State::Done)
        );
        assert_eq!(recent[0].outputs, vec!["/out/x.json".to_string()]);
        let done = j.audio_done_since(0).unwrap();
        assert_eq!(
            done,
            vec![
                ("http:api".to_string(), 90.0),
                ("watch:/a".to_string(), 180.0)
            ]
        );
        assert!(j.audio_done_since(i64::MAX).unwrap().is_empty());
    }
}
