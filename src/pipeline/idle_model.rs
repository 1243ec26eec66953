//! `[asr] idle_unload`: the Whisper model is dropped after that long without work, giving
//! its memory (VRAM on a GPU build) back, and loaded again by the next job. An exclusive
//! training run drops it too (`unload_now`), for as long as it runs. A job that is
//! running keeps its own reference, so unloading never pulls the model from under it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::transcribe::{
    AudioSource, DecodeOptions, ModelOptions, TranscribeError, Transcriber, WhisperTranscriber,
};
use super::transcript::Transcript;

pub struct IdleModel {
    path: PathBuf,
    /// How it is loaded again (the GPU device among them).
    options: ModelOptions,
    idle_unload: Duration,
    state: Mutex<State>,
    running: AtomicUsize,
}

struct State {
    model: Option<Arc<WhisperTranscriber>>,
    last_used: Instant,
}

impl IdleModel {
    /// Starts with `loaded` (the model loaded at start-up) in memory.
    pub fn new(loaded: WhisperTranscriber, path: PathBuf, idle_unload: Duration) -> IdleModel {
        IdleModel {
            path,
            options: ModelOptions::default(),
            idle_unload,
            state: Mutex::new(State {
                model: Some(Arc::new(loaded)),
                last_used: Instant::now(),
            }),
            running: AtomicUsize::new(0),
        }
    }

    /// Starts with nothing in memory: the first job loads it (a dataset's teacher model).
    pub fn unloaded(path: PathBuf, idle_unload: Duration) -> IdleModel {
        IdleModel {
            path,
            options: ModelOptions::default(),
            idle_unload,
            state: Mutex::new(State {
                model: None,
                last_used: Instant::now(),
            }),
            running: AtomicUsize::new(0),
        }
    }

    /// Loaded again with `options` (those it was first loaded with).
    pub fn with_options(mut self, options: ModelOptions) -> IdleModel {
        self.options = options;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the model if it has been idle for `idle_unload`; true if it did.
    pub fn unload_if_idle(&self) -> bool {
        let mut s = self.state();
        if s.model.is_none()
            || self.running.load(Ordering::SeqCst) > 0
            || s.last_used.elapsed() < self.idle_unload
        {
            return false;
        }
        s.model = None;
        tracing::info!(idle = ?self.idle_unload, model = %self.path.display(), "model unloaded after being idle");
        true
    }

    fn model(&self) -> Result<Arc<WhisperTranscriber>, TranscribeError> {
        let mut s = self.state();
        s.last_used = Instant::now();
        if let Some(m) = &s.model {
            return Ok(m.clone());
        }
        let started = Instant::now();
        let m = Arc::new(WhisperTranscriber::load_with(&self.path, &self.options)?);
        tracing::info!(model = %self.path.display(), took = ?started.elapsed(), "model loaded again for new work");
        s.model = Some(m.clone());
        Ok(m)
    }
}

impl IdleModel {
    /// Drops the model now unless a transcription is using it; whether it is out now.
    pub fn unload_now(&self) -> bool {
        let mut s = self.state();
        if self.running.load(Ordering::SeqCst) > 0 {
            return false;
        }
        if s.model.take().is_some() {
            tracing::info!(model = %self.path.display(), "model unloaded for an exclusive training run");
        }
        true
    }
}

impl Transcriber for IdleModel {
    fn transcribe(
        &self,
        audio: &mut dyn AudioSource,
        opts: &DecodeOptions,
    ) -> Result<Transcript, TranscribeError> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let result = self.model().and_then(|m| m.transcribe(audio, opts));
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.state().last_used = Instant::now();
        result
    }

    fn unload_if_idle(&self) -> bool {
        IdleModel::unload_if_idle(self)
    }

    fn unload_now(&self) -> bool {
        IdleModel::unload_now(self)
    }

    fn preload(&self) -> Result<(), TranscribeError> {
        self.model().map(drop)
    }

    fn model_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}
