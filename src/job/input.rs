//! Where an input's bytes come from, and what "finished" means there. A local file and an
//! S3 object implement [`Input`]; the job path (`job::run`) is written once over it.

use std::future::Future;
use std::path::{Path, PathBuf};

use super::failure::{Failure, Stage};
use crate::journal::State;
use crate::sources::s3_body::Downloaded;

/// The bytes to decode.
pub enum Body {
    /// A file that can be read and sought (a file named on the command line, or an object
    /// spooled to disk).
    File(PathBuf),
    /// A file the input opened itself (without following links, checked to be the one that
    /// was journaled); `path` names it for the format probe.
    Opened { file: std::fs::File, path: PathBuf },
    /// Bytes as they arrive, read front to back; the extension helps the format probe.
    Stream {
        reader: Box<dyn std::io::Read + Send + Sync>,
        extension: Option<String>,
    },
}

/// The content's sha256: known already, or known once the bytes have been read.
pub enum Sha256 {
    Known(String),
    /// The file is hashed once it has been decoded.
    OfFile(PathBuf),
    WhenRead(std::sync::mpsc::Receiver<Downloaded>),
}

impl Sha256 {
    /// Blocks until the hash is known (call it after the decoder is done with the stream).
    pub fn wait(self) -> Result<String, Failure> {
        match self {
            Sha256::Known(s) => Ok(s),
            Sha256::OfFile(path) => crate::hash::sha256_file(&path).map_err(|e| {
                Failure::transient(Stage::Hash, format!("cannot read {}: {e}", path.display()))
            }),
            Sha256::WhenRead(rx) => match rx.recv() {
                Ok(Ok(sha)) => Ok(sha),
                Ok(Err(why)) => Err(Failure::transient(Stage::Fetch, why.to_string())),
                Err(_) => Err(Failure::transient(
                    Stage::Fetch,
                    "the download ended without a result",
                )),
            },
        }
    }
}

pub struct Opened {
    pub body: Body,
    pub sha256: Sha256,
}

/// What finishing an input did, for its trail in the journal: (event, detail).
pub type Finished = Option<(&'static str, String)>;

/// Finishing a done input failed: its outputs stand, the input is where it was.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("cannot move or delete {path}: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot delete or tag {uri}: {reason}")]
    S3 { uri: String, reason: String },
}

pub trait Input: Send + Sync {
    /// The input as outputs and logs name it: a path, or an `s3://` URI.
    fn name(&self) -> &str;

    /// Checks before any work (still there, a safe name, within its size limit).
    fn admit(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;

    /// The content's sha256 when it is cheap to know before decoding (a local file, an S3
    /// object whose upload carried a SHA-256 checksum, or one that is spooled anyway), so
    /// that an input already transcribed under another name is not transcribed again. A
    /// spool file, if one is made here, goes in `spool_dir` and is what `open` then reads.
    fn sha256_first(
        &mut self,
        spool_dir: &Path,
    ) -> impl Future<Output = Result<Option<String>, Failure>> + Send;

    /// Opens the bytes; a spool file, if one is needed, goes in `spool_dir`.
    fn open(&mut self, spool_dir: &Path) -> impl Future<Output = Result<Opened, Failure>> + Send;

    /// Called once decoding has ended (`decode_failed` says how): a broken transfer is
    /// reported here, so that it is not blamed on the input.
    fn close(&mut self, decode_failed: bool) -> impl Future<Output = Result<(), Failure>> + Send;

    /// After the outputs are journaled: move, keep, delete or tag the input.
    fn finish(&self) -> impl Future<Output = Result<Finished, FinishError>> + Send;

    /// A permanent failure: quarantine the input where its source has a place for that.
    /// Returns the state to journal (`quarantined`, or `failed`).
    fn reject(
        &self,
        stage: Stage,
        reason: &str,
        attempts: i64,
    ) -> impl Future<Output = State> + Send;
}
