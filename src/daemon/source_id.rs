//! Which source an input came from. The journal's `source` column spells it
//! `watch:<absolute folder>`, `sqs:<queue URL>` or `http:api`; everywhere else it is this type, so a
//! folder is never looked up among queues or a string built by hand.

use std::fmt;
use std::path::{Path, PathBuf};

const WATCH_PREFIX: &str = "watch:";
const QUEUE_PREFIX: &str = "sqs:";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceId {
    /// A watched folder, by its absolute root.
    Folder(PathBuf),
    /// An `[[s3]]` source, by its SQS queue URL.
    Queue(String),
    /// Uploads to the HTTP API (`[http] api`).
    Http,
}

impl SourceId {
    pub fn folder(root: &Path) -> SourceId {
        SourceId::Folder(root.to_path_buf())
    }

    pub fn queue(queue_url: &str) -> SourceId {
        SourceId::Queue(queue_url.to_string())
    }

    /// The source a journal `source` names; `None` for one this version does not know.
    pub fn parse(source: &str) -> Option<SourceId> {
        if source == crate::journal::HTTP_SOURCE {
            return Some(SourceId::Http);
        }
        if let Some(root) = source.strip_prefix(WATCH_PREFIX) {
            return Some(SourceId::Folder(PathBuf::from(root)));
        }
        source
            .strip_prefix(QUEUE_PREFIX)
            .map(|url| SourceId::Queue(url.to_string()))
    }

    /// The watched folder a journal `source` names, if it is one.
    pub fn root_of(source: &str) -> Option<PathBuf> {
        match SourceId::parse(source) {
            Some(SourceId::Folder(root)) => Some(root),
            _ => None,
        }
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceId::Folder(root) => write!(f, "{WATCH_PREFIX}{}", root.display()),
            SourceId::Queue(url) => write!(f, "{QUEUE_PREFIX}{url}"),
            SourceId::Http => f.write_str(crate::journal::HTTP_SOURCE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_spellings_round_trip() {
        for id in [
            SourceId::folder(Path::new("/srv/in box")),
            SourceId::queue("https://sqs.eu-west-1.amazonaws.com/1/uploads"),
            SourceId::Http,
        ] {
            assert_eq!(SourceId::parse(&id.to_string()), Some(id));
        }
        assert_eq!(
            SourceId::root_of("watch:/srv/in"),
            Some(PathBuf::from("/srv/in"))
        );
        assert_eq!(SourceId::root_of("sqs:http://q"), None);
        assert_eq!(
            SourceId::parse("sqs:http://q"),
            Some(SourceId::Queue("http://q".into()))
        );
        assert_eq!(SourceId::parse("http:upload"), None);
        assert_eq!(SourceId::parse("http:api"), Some(SourceId::Http));
    }
}
