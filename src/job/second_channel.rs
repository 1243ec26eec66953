//! `channels = "split"` in the job: channel 0 streams through the transcriber while the
//! decoder hands channel 1 to a spool file (16-bit PCM, 32 KB per second of audio, removed
//! when done), which is transcribed after it; the transcripts are merged in time order.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{transcribe_failure, Failure, Stage};
use crate::dataset::pcm::{pcm_tap, spool_as_wav, PcmSpool};
use crate::pipeline::channels::{self, Channels};
use crate::pipeline::decode::AudioDecoder16k;
use crate::pipeline::transcribe::{DecodeOptions, Transcriber};
use crate::pipeline::transcript::Transcript;

/// Channel 1, kept while channel 0 is transcribed.
pub struct SecondChannel {
    spool: Arc<Mutex<PcmSpool>>,
    path: tempfile::TempPath,
}

impl SecondChannel {
    /// Splits `decoder` when `opts` asks for it and the audio may have two channels or more
    /// (a container that does not say how many is split too: a mono stream then leaves
    /// channel 1 silent).
    pub fn split(
        decoder: &mut AudioDecoder16k,
        opts: &DecodeOptions,
        spool_dir: &Path,
    ) -> Result<Option<SecondChannel>, Failure> {
        if opts.channels != Channels::Split || decoder.info().channels == 1 {
            return Ok(None);
        }
        let (spool, path) = PcmSpool::create(spool_dir).map_err(|e| {
            Failure::transient(
                Stage::Decode,
                format!("cannot create a spool file for the second channel: {e}"),
            )
        })?;
        decoder
            .split_channels(pcm_tap(spool.clone()))
            .map_err(|e| Failure::permanent(Stage::Decode, e.to_string()))?;
        Ok(Some(SecondChannel { spool, path }))
    }

    /// Transcribes channel 1 and merges it with channel 0's transcript `left`.
    pub fn transcribe_and_merge(
        self,
        transcriber: &Arc<dyn Transcriber>,
        left: Transcript,
        opts: &DecodeOptions,
    ) -> Result<Transcript, Failure> {
        let spooled = self
            .spool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish();
        let spool_failed = |e: std::io::Error| {
            Failure::transient(
                Stage::Decode,
                format!("cannot keep the second channel in its spool file: {e}"),
            )
        };
        spooled.map_err(spool_failed)?;
        let wav = spool_as_wav(&self.path).map_err(spool_failed)?;
        let mut right = AudioDecoder16k::open_stream(Box::new(wav), Some("wav"))
            .map_err(|e| Failure::transient(Stage::Decode, format!("the second channel: {e}")))?;
        // Its progress follows channel 0's, toward twice the audio (the job's total).
        opts.progress.next_pass();
        let heard = transcriber
            .transcribe(&mut right, opts)
            .map_err(transcribe_failure)?;
        Ok(channels::merge(left, heard, &opts.channel_names))
    }
}

/// What a dataset may learn from: the decoder's tap keeps channel 0's audio when channels
/// are split, so channel 1's segments (whose audio is not in it) are left out.
pub fn dataset_view(t: &Transcript) -> Cow<'_, Transcript> {
    if t.segments.iter().all(|s| s.channel != Some(1)) {
        return Cow::Borrowed(t);
    }
    let mut kept = t.clone();
    kept.segments.retain(|s| s.channel != Some(1));
    Cow::Owned(kept)
}
