//! Outputs to a local folder: `<stem>.<format>`, each written whole or not at all
//! (`sinks::local::write_atomic`). Reuse copies an earlier twin's files.

use std::path::PathBuf;

use super::failure::{Failure, Stage};
use super::output::{as_reused, twin_output, Output, Placed};
use crate::pipeline::render::Format;
use crate::sinks::local::write_atomic;

pub struct LocalDir {
    /// The outputs' path without the format's extension.
    stem: PathBuf,
}

impl LocalDir {
    pub fn new(stem: PathBuf) -> LocalDir {
        LocalDir { stem }
    }

    pub fn path(&self, format: Format) -> PathBuf {
        let mut path = self.stem.as_os_str().to_owned();
        path.push(".");
        path.push(format.extension());
        PathBuf::from(path)
    }

    fn write(&self, format: Format, bytes: &[u8]) -> Result<String, Failure> {
        let path = self.path(format);
        write_atomic(&path, bytes).map_err(|e| Failure::transient(Stage::Write, e.to_string()))?;
        Ok(path.display().to_string())
    }
}

impl Output for LocalDir {
    async fn put(
        &self,
        format: Format,
        bytes: Vec<u8>,
        _placed: &Placed<'_>,
    ) -> Result<String, Failure> {
        self.write(format, &bytes)
    }

    async fn reuse(
        &self,
        formats: &[Format],
        twin: &[String],
        input: &str,
        sha256: &str,
    ) -> Option<Result<Vec<String>, Failure>> {
        let mut planned = Vec::new();
        for &format in formats {
            let from = twin_output(twin, format)?;
            let bytes = std::fs::read(from).ok()?;
            planned.push((format, as_reused(format, bytes, input, sha256)?));
        }
        let mut written = Vec::new();
        for (format, bytes) in planned {
            match self.write(format, &bytes) {
                Ok(p) => written.push(p),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(written))
    }
}
