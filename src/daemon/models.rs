//! The models profiles name besides the serving one. Each is loaded when a job first needs
//! it and kept while `[asr] max_loaded_models` allows (the serving model counts as one);
//! to make room the least recently used is unloaded first. A job holds its model to its end,
//! so one unloaded meanwhile is freed when its last job finishes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::serving::ServingModel;

/// Loads one model file (on a blocking thread).
pub type Loader = Arc<dyn Fn(&Path) -> Result<ServingModel, String> + Send + Sync>;

pub struct ModelPool {
    /// How many besides the serving model may stay loaded.
    keep: usize,
    /// Least recently used first.
    loaded: Mutex<Vec<(PathBuf, Arc<ServingModel>)>>,
    /// One load at a time: two jobs wanting the same model load it once.
    loading: tokio::sync::Mutex<()>,
    loader: Loader,
    /// Models that failed to load: why, when to try again, and the wait after that.
    failed: Mutex<HashMap<PathBuf, (String, Instant, Duration)>>,
}

/// A model that failed to load is tried again after this, doubling up to `MAX_RETRY_WAIT`
/// (a full GPU or a file being copied may pass); the jobs that want it wait meanwhile.
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(30);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);

impl ModelPool {
    /// `max_loaded`: `[asr] max_loaded_models`, the serving model included.
    pub fn new(max_loaded: usize, loader: Loader) -> ModelPool {
        ModelPool {
            keep: max_loaded.saturating_sub(1),
            loaded: Mutex::new(Vec::new()),
            loading: tokio::sync::Mutex::new(()),
            loader,
            failed: Mutex::new(HashMap::new()),
        }
    }

    /// The model at `path`, loaded now if it is not.
    pub async fn get(&self, path: &Path) -> Result<Arc<ServingModel>, String> {
        if let Some(m) = self.touch(path) {
            return Ok(m);
        }
        let _one = self.loading.lock().await;
        if let Some(m) = self.touch(path) {
            return Ok(m);
        }
        let retry = {
            let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            match failed.get(path) {
                Some((why, next, _)) if Instant::now() < *next => {
                    return Err(format!(
                        "{why} (tried again in {}s)",
                        next.saturating_duration_since(Instant::now()).as_secs()
                    ));
                }
                Some((_, _, wait)) => (*wait * 2).min(MAX_RETRY_WAIT),
                None => FIRST_RETRY_WAIT,
            }
        };
        // Room first, so no more than `max_loaded_models` are held while this one loads (a
        // GPU sized for them has no room for one more); a failed load then waits out its
        // backoff above instead of evicting again.
        self.evict_to(self.keep.saturating_sub(1));
        tracing::info!(model = %path.display(), "loading the model a profile names");
        let (loader, p) = (self.loader.clone(), path.to_path_buf());
        let loaded = tokio::task::spawn_blocking(move || loader(&p))
            .await
            .map_err(|e| format!("loading ended abnormally: {e}"))
            .and_then(|r| r);
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let model = match loaded {
            Ok(m) => {
                failed.remove(path);
                Arc::new(m)
            }
            Err(why) => {
                tracing::error!(model = %path.display(), %why, retry_in = ?retry, "cannot load the model a profile names; its inputs wait");
                failed.insert(
                    path.to_path_buf(),
                    (why.clone(), Instant::now() + retry, retry),
                );
                return Err(why);
            }
        };
        drop(failed);
        if self.keep > 0 {
            self.lock().push((path.to_path_buf(), model.clone()));
        }
        Ok(model)
    }

    /// The paths loaded now, least recently used first.
    #[cfg(test)]
    pub fn loaded(&self) -> Vec<PathBuf> {
        self.lock().iter().map(|(p, _)| p.clone()).collect()
    }

    /// Lets idle models give their memory back (`[asr] idle_unload`).
    pub fn unload_idle(&self) {
        for (_, m) in self.lock().iter() {
            m.transcriber.unload_if_idle();
        }
    }

    /// Unloads them all (an exclusive training run takes the GPU; no job is running).
    pub fn unload_all(&self) {
        let n = std::mem::take(&mut *self.lock()).len();
        if n > 0 {
            tracing::info!(
                models = n,
                "profile models unloaded for an exclusive training run"
            );
        }
    }

    fn touch(&self, path: &Path) -> Option<Arc<ServingModel>> {
        let mut loaded = self.lock();
        let i = loaded.iter().position(|(p, _)| p == path)?;
        let entry = loaded.remove(i);
        let model = entry.1.clone();
        loaded.push(entry);
        Some(model)
    }

    fn evict_to(&self, n: usize) {
        let mut loaded = self.lock();
        while loaded.len() > n {
            let (p, _) = loaded.remove(0);
            tracing::info!(model = %p.display(), max_loaded_models = self.keep + 1,
                "unloaded the least recently used model to make room");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(PathBuf, Arc<ServingModel>)>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::transcribe::{AudioSource, DecodeOptions, TranscribeError, Transcriber};
    use crate::pipeline::transcript::Transcript;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Named(String);
    impl Transcriber for Named {
        fn model_name(&self) -> String {
            self.0.clone()
        }
        fn transcribe(
            &self,
            _: &mut dyn AudioSource,
            _: &DecodeOptions,
        ) -> Result<Transcript, TranscribeError> {
            Err(TranscribeError::Asr("not used".into()))
        }
    }

    fn pool(max_loaded: usize, loads: Arc<AtomicUsize>) -> ModelPool {
        ModelPool::new(
            max_loaded,
            Arc::new(move |p: &Path| {
                loads.fetch_add(1, Ordering::SeqCst);
                if p.ends_with("broken.bin") {
                    return Err("not a ggml model".into());
                }
                let t: Arc<dyn Transcriber> = Arc::new(Named(p.display().to_string()));
                Ok(ServingModel::new(t, p.to_path_buf(), None))
            }),
        )
    }

    #[tokio::test]
    async fn models_load_once_and_the_least_recently_used_goes_first() {
        let loads = Arc::new(AtomicUsize::new(0));
        let pool = pool(3, loads.clone());
        let (a, b, c) = (Path::new("a.bin"), Path::new("b.bin"), Path::new("c.bin"));
        pool.get(a).await.unwrap();
        pool.get(b).await.unwrap();
        let again = pool.get(a).await.unwrap();
        assert_eq!(again.transcriber.model_name(), "a.bin");
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "a was kept, not loaded again"
        );
        assert_eq!(pool.loaded(), [b, a], "a was used last");
        // Three allowed, the serving one included: c takes b's place, not a's.
        pool.get(c).await.unwrap();
        assert_eq!(pool.loaded(), [a, c]);
        pool.get(b).await.unwrap();
        assert_eq!(
            loads.load(Ordering::SeqCst),
            4,
            "b was unloaded, so loaded again"
        );
        assert_eq!(pool.loaded(), [c, b]);
        // A model that cannot load says why, and is not tried again (nor room made for it)
        // at once for every input that wants it.
        let e = pool.get(Path::new("broken.bin")).await.err().unwrap();
        assert!(e.contains("not a ggml model"), "{e}");
        assert_eq!(pool.loaded(), [b]);
        let again = pool.get(Path::new("broken.bin")).await.err().unwrap();
        assert!(
            again.contains("not a ggml model") && again.contains("tried again in"),
            "{again}"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 5, "not loaded a second time");
        assert_eq!(pool.loaded(), [b], "nothing more evicted");
    }

    #[tokio::test]
    async fn with_one_model_allowed_a_profile_model_lives_only_as_long_as_its_job() {
        let loads = Arc::new(AtomicUsize::new(0));
        let pool = pool(1, loads.clone());
        let held = pool.get(Path::new("a.bin")).await.unwrap();
        assert!(pool.loaded().is_empty());
        assert_eq!(Arc::strong_count(&held), 1, "only the job holds it");
        pool.get(Path::new("a.bin")).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }
}
