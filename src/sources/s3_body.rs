//! An S3 response body as a blocking `Read` for the decoder, without holding the object:
//! an async task copies chunks into a small bounded channel (at most `DEPTH` chunks in
//! memory) and hashes every byte on the way. If the reader stops early (the decoder is done
//! or gave up), the task still reads to the end for the hash unless it is aborted.

use std::io::Read;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Chunks in flight between the download and the decoder.
const DEPTH: usize = 4;

pub struct BodyReader {
    rx: mpsc::Receiver<Result<Vec<u8>, Interrupted>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(c)) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The download broke after S3 had answered (the connection dropped, a checksum failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("download interrupted: {0}")]
pub struct Interrupted(pub String);

/// The sha256 of the whole body, or why the download failed.
pub type Downloaded = Result<String, Interrupted>;

/// Starts copying `body` into a reader. The task ends with the sha256 of the whole body, or
/// why the download failed; the same result is also sent on the returned channel, for a
/// blocking thread to wait on.
pub fn stream(
    mut body: aws_sdk_s3::primitives::ByteStream,
) -> (
    BodyReader,
    tokio::task::JoinHandle<Downloaded>,
    std::sync::mpsc::Receiver<Downloaded>,
) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let task = tokio::spawn(async move {
        let mut hasher = Sha256::new();
        let mut reader_gone = false;
        let result = loop {
            match body.try_next().await {
                Ok(Some(chunk)) => {
                    hasher.update(&chunk);
                    if !reader_gone && tx.send(Ok(chunk.to_vec())).await.is_err() {
                        reader_gone = true;
                    }
                }
                Ok(None) => break Ok(hex::encode(hasher.finalize())),
                Err(e) => {
                    let why = Interrupted(e.to_string());
                    let _ = tx.send(Err(why.clone())).await;
                    break Err(why);
                }
            }
        };
        drop(tx);
        let _ = done_tx.send(result.clone());
        result
    });
    (
        BodyReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        },
        task,
        done_rx,
    )
}
