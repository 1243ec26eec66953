//! Reads a multipart upload: the `file` part goes straight to a temporary file in the
//! uploads folder, hashed as it arrives, in bounded pieces (memory does not grow with the
//! upload); every other part is a short text field. The size limit is counted as bytes come
//! (413 at the first byte over), and a client that sends nothing for `upload_idle_timeout`
//! is dropped.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use axum::extract::multipart::{Field, Multipart};
use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::sinks::local::AtomicFile;

/// Bytes gathered before one write to disk.
const WRITE_PIECE: usize = 1 << 20;
/// The longest text field taken (a prompt is at most a few hundred tokens).
const MAX_FIELD: usize = 64 << 10;
/// The most text fields taken (OpenAI's form has under a dozen).
const MAX_FIELDS: usize = 64;

/// The file part, written but not yet in place.
pub struct ReceivedFile {
    pub filename: String,
    /// The upload's name in the uploads folder.
    pub stored_as: String,
    pub file: AtomicFile,
    pub sha256: String,
    pub size: u64,
}

pub struct Received {
    pub fields: HashMap<String, String>,
    pub granularities: Vec<String>,
    pub file: Option<ReceivedFile>,
}

/// The limits an upload is read under.
pub struct Limits {
    pub max_size: u64,
    pub idle: Duration,
}

/// The extensions kept on an upload's file, for the format probe: the media ones only, so
/// nothing a client chose beyond a known word becomes part of a path.
const EXTENSIONS: [&str; 19] = [
    "wav", "mp3", "flac", "ogg", "oga", "opus", "m4a", "m4b", "aac", "aif", "aiff", "caf", "mkv",
    "mp4", "m4v", "mov", "webm", "avi", "mpga",
];

fn stored_name(job_id: &str, filename: &str) -> String {
    let ext = Path::new(filename)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .and_then(|e| EXTENSIONS.iter().find(|x| **x == e));
    match ext {
        // mpga is OpenAI's name for mp3.
        Some(&"mpga") => format!("{job_id}.mp3"),
        Some(e) => format!("{job_id}.{e}"),
        None => job_id.to_string(),
    }
}

fn stalled(idle: Duration) -> ApiError {
    ApiError::status(
        StatusCode::REQUEST_TIMEOUT,
        "upload_stalled",
        format!(
            "the upload sent nothing for {}; send it again",
            humantime::format_duration(idle)
        ),
    )
}

fn broken(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::bad(format!(
        "the multipart body cannot be read: {}",
        e.body_text()
    ))
}

pub fn too_large(max: u64) -> ApiError {
    ApiError::status(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("the upload is over max_upload_size ({max} bytes); split the file, or raise [http] max_upload_size"),
    )
}

pub async fn receive(
    mut multipart: Multipart,
    uploads: &Path,
    job_id: &str,
    limits: &Limits,
) -> Result<Received, ApiError> {
    let mut received = Received {
        fields: HashMap::new(),
        granularities: Vec::new(),
        file: None,
    };
    loop {
        let next = tokio::time::timeout(limits.idle, multipart.next_field())
            .await
            .map_err(|_| stalled(limits.idle))?
            .map_err(broken)?;
        let Some(field) = next else {
            return Ok(received);
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if received.file.is_some() {
                return Err(ApiError::invalid("file", "more than one file part"));
            }
            received.file = Some(save_file(field, uploads, job_id, limits).await?);
            continue;
        }
        if received.fields.len() + received.granularities.len() >= MAX_FIELDS {
            return Err(ApiError::bad(format!(
                "the form has over {MAX_FIELDS} fields"
            )));
        }
        let value = text(field, &name, limits.idle).await?;
        match name.as_str() {
            "timestamp_granularities[]" | "timestamp_granularities" => {
                received.granularities.push(value.trim().to_string());
            }
            _ => {
                received.fields.insert(name, value);
            }
        }
    }
}

async fn text(mut field: Field<'_>, name: &str, idle: Duration) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = tokio::time::timeout(idle, field.chunk())
        .await
        .map_err(|_| stalled(idle))?
        .map_err(broken)?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_FIELD {
            return Err(ApiError::bad(format!(
                "the field {name:?} is over {MAX_FIELD} bytes"
            )));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad(format!("the field {name:?} is not UTF-8")))
}

async fn save_file(
    mut field: Field<'_>,
    uploads: &Path,
    job_id: &str,
    limits: &Limits,
) -> Result<ReceivedFile, ApiError> {
    let filename = field.file_name().unwrap_or("upload").to_string();
    let mut incoming = Incoming::create(uploads, job_id, &filename, limits.max_size)?;
    while let Some(chunk) = tokio::time::timeout(limits.idle, field.chunk())
        .await
        .map_err(|_| stalled(limits.idle))?
        .map_err(broken)?
    {
        incoming.push(&chunk).await?;
    }
    incoming.finish().await
}

/// A file arriving in the uploads folder (from a multipart part or an S3 object): hashed
/// and counted as it comes, written in pieces of [`WRITE_PIECE`], in place once finished.
pub struct Incoming {
    filename: String,
    stored_as: String,
    /// `None` only while a piece is being written.
    file: Option<AtomicFile>,
    hasher: Sha256,
    size: u64,
    max_size: u64,
    piece: Vec<u8>,
}

impl Incoming {
    /// `filename` is the client's name, for people (control characters dropped, at most
    /// 255 characters); the file is named by `job_id`.
    pub fn create(
        uploads: &Path,
        job_id: &str,
        filename: &str,
        max_size: u64,
    ) -> Result<Incoming, ApiError> {
        let filename: String = filename
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect();
        let stored_as = stored_name(job_id, &filename);
        let file = AtomicFile::create(&uploads.join(&stored_as))
            .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
        Ok(Incoming {
            filename,
            stored_as,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            max_size,
            piece: Vec::with_capacity(WRITE_PIECE),
        })
    }

    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.size += chunk.len() as u64;
        if self.size > self.max_size {
            return Err(too_large(self.max_size));
        }
        self.hasher.update(chunk);
        self.piece.extend_from_slice(chunk);
        if self.piece.len() >= WRITE_PIECE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        let full = std::mem::replace(&mut self.piece, Vec::with_capacity(WRITE_PIECE));
        let Some(file) = self.file.take() else {
            return Err(ApiError::internal("the upload's file was lost"));
        };
        let (file, written) = tokio::task::spawn_blocking(move || {
            let r = file.as_file().write_all(&full);
            (file, r)
        })
        .await
        .map_err(|e| ApiError::internal(format!("storing the upload ended abnormally: {e}")))?;
        self.file = Some(file);
        written.map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))
    }

    pub async fn finish(mut self) -> Result<ReceivedFile, ApiError> {
        if !self.piece.is_empty() {
            self.flush().await?;
        }
        if self.size == 0 {
            return Err(ApiError::invalid("file", "the file is empty"));
        }
        let Some(file) = self.file.take() else {
            return Err(ApiError::internal("the upload's file was lost"));
        };
        Ok(ReceivedFile {
            filename: self.filename,
            stored_as: self.stored_as,
            file,
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_media_extensions_reach_the_stored_name() {
        assert_eq!(stored_name("j1", "talk.WAV"), "j1.wav");
        assert_eq!(stored_name("j1", "voice.mpga"), "j1.mp3");
        assert_eq!(stored_name("j1", "../../etc/passwd"), "j1");
        assert_eq!(stored_name("j1", "a.wav/../../x.sh"), "j1");
        assert_eq!(stored_name("j1", ""), "j1");
    }
}
