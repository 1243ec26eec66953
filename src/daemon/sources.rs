//! The running sources (watched folders, SQS queues) and their tasks, as the configuration
//! names them. `apply` brings them in line with a configuration: at start-up, and again on
//! SIGHUP, when sources that were added start, removed ones stop (their running jobs finish;
//! their queued inputs wait for the source to come back), and changed ones restart with the
//! new settings. Other sections take effect at the next restart.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{absolute, heartbeat, FolderInfo, QueueInfo, Shared, SourceId};
use crate::config::{Config, Resolved, S3Config, WatchConfig};
use crate::sources::fs::{watch_folder, Candidate, FolderSpec};
use crate::sources::sqs::{poll_queue, Delivery};

/// One source's tasks, and what it was started with.
struct Running {
    settings: Settings,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub(super) struct Sources {
    shared: Arc<Shared>,
    candidates: mpsc::Sender<Candidate>,
    deliveries: mpsc::Sender<Delivery>,
    running: HashMap<SourceId, Running>,
}

/// What a source was started with: a reload restarts it when any field differs (compared
/// whole, so a new setting can never be left out of the comparison).
#[derive(PartialEq)]
enum Settings {
    /// With its profile's fingerprint: a changed `[profiles.NAME]` or `[asr]` key restarts it.
    Folder(WatchConfig, String),
    Queue(S3Config, String),
}

/// A source's resolved profile; one that cannot be resolved (check-config refuses such a
/// configuration) leaves the source stopped, with the reason in the log.
fn profile(id: &SourceId, resolved: Result<Resolved, String>) -> Option<Arc<Resolved>> {
    match resolved {
        Ok(r) => {
            if let Some(warning) = &r.vad_missing {
                tracing::warn!(source = %id, "{warning} (asr.vad = false)");
            }
            Some(Arc::new(r))
        }
        Err(why) => {
            tracing::error!(source = %id, %why, "the source is not started: its profile is invalid");
            None
        }
    }
}

impl Sources {
    pub fn new(
        shared: Arc<Shared>,
        candidates: mpsc::Sender<Candidate>,
        deliveries: mpsc::Sender<Delivery>,
    ) -> Sources {
        Sources {
            shared,
            candidates,
            deliveries,
            running: HashMap::new(),
        }
    }

    /// Starts, stops and restarts sources so they match `config`. Returns (started, stopped).
    pub async fn apply(&mut self, config: &Config) -> (usize, usize) {
        // In the file's order: sources start as they are listed.
        let mut wanted: Vec<(SourceId, Settings, Arc<Resolved>)> = Vec::new();
        for w in &config.watch {
            let id = SourceId::folder(&absolute(w.path.get_ref()));
            if let Some(p) = profile(&id, w.resolved(config)) {
                wanted.push((id, Settings::Folder(w.clone(), p.fingerprint()), p));
            }
        }
        for c in &config.s3 {
            let id = SourceId::queue(c.queue_url.get_ref());
            if let Some(p) = profile(&id, c.resolved(config)) {
                wanted.push((id, Settings::Queue(c.clone(), p.fingerprint()), p));
            }
        }
        let mut stopped = 0;
        let ids: Vec<SourceId> = self.running.keys().cloned().collect();
        for id in ids {
            let want = wanted.iter().find(|w| w.0 == id).map(|w| &w.1);
            if want != self.running.get(&id).map(|r| &r.settings) {
                if let Some(r) = self.running.remove(&id) {
                    r.stop().await;
                    stopped += 1;
                }
                self.forget(&id);
            }
        }
        let mut started = 0;
        for (id, settings, profile) in wanted {
            if self.running.contains_key(&id) {
                continue;
            }
            match settings {
                Settings::Folder(w, _) => self.start_folder(&w, id, profile),
                Settings::Queue(c, _) => self.start_queue(&c, id, profile).await,
            }
            started += 1;
        }
        (started, stopped)
    }

    fn forget(&self, id: &SourceId) {
        let mut folders = self
            .shared
            .folders
            .write()
            .unwrap_or_else(|p| p.into_inner());
        folders.remove(id);
        drop(folders);
        let mut queues = self
            .shared
            .queues
            .write()
            .unwrap_or_else(|p| p.into_inner());
        queues.remove(id);
    }

    fn start_folder(&mut self, w: &WatchConfig, id: SourceId, profile: Arc<Resolved>) {
        let root = absolute(w.path.get_ref());
        let info = FolderInfo {
            root: root.clone(),
            // Beside the media: under the watched folder itself.
            output: match w.beside() {
                true => root.clone(),
                false => absolute(w.output.get_ref()),
            },
            beside: w.beside(),
            formats: (profile.formats.clone()).unwrap_or_else(|| w.formats.get_ref().clone()),
            after: w.after(),
            max_file_size: w.max_file_size(),
            keep: super::retention::Keep {
                done: w.keep_done,
                failed: w.keep_failed,
                outputs: w.keep_outputs,
            },
            profile: profile.clone(),
        };
        // Old enough that no running write can own it (a reload may restart a folder whose
        // jobs are writing); at start-up `run` removes all of them first.
        let n = crate::sinks::local::remove_stale_temps(&info.output, super::STALE_TEMP_AGE);
        if n > 0 {
            tracing::info!(output = %info.output.display(), removed = n, "removed temporary files left by an interrupted write");
        }
        self.shared
            .folders
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), info);
        let spec = FolderSpec {
            root,
            stable_for: *w.stable_for.get_ref(),
            rescan_every: *w.rescan_every.get_ref(),
            marker: w.marker.clone().filter(|m| !m.is_empty()),
            extensions: w.extensions(),
        };
        let (stop, stop_rx) = watch::channel(false);
        let candidates = self.candidates.clone();
        let task = tokio::spawn(async move {
            let root = spec.root.clone();
            if let Err(e) = watch_folder(spec, candidates, stop_rx).await {
                tracing::error!(folder = %root.display(), error = %e, "the folder is no longer watched");
            }
        });
        self.running.insert(
            id,
            Running {
                settings: Settings::Folder(w.clone(), profile.fingerprint()),
                stop,
                tasks: vec![task],
            },
        );
    }

    async fn start_queue(&mut self, c: &S3Config, id: SourceId, profile: Arc<Resolved>) {
        let fingerprint = profile.fingerprint();
        let q = Arc::new(QueueInfo::new(c, profile).await);
        self.shared
            .queues
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), q.clone());
        let (stop, stop_rx) = watch::channel(false);
        let (s, url) = (self.shared.clone(), q.spec.queue_url.clone());
        // Hold at most a few jobs' worth beyond what the workers are running.
        let most = self.shared.workers * 2;
        let room = move || most.saturating_sub(s.receipts().inputs_from(&url));
        let poller = tokio::spawn(poll_queue(
            q.spec.clone(),
            q.clients.sqs.clone(),
            self.deliveries.clone(),
            room,
            q.reach.clone(),
            stop_rx.clone(),
        ));
        // Not awaited on stop: it outlives the source until its running jobs are done.
        tokio::spawn(heartbeat(
            self.shared.clone(),
            q.spec.queue_url.clone(),
            stop_rx,
        ));
        self.running.insert(
            id,
            Running {
                settings: Settings::Queue(c.clone(), fingerprint),
                stop,
                tasks: vec![poller],
            },
        );
    }

    pub fn counts(&self) -> (usize, usize) {
        let folders = self
            .shared
            .folders
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        let queues = self
            .shared
            .queues
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        (folders, queues)
    }

    /// Stops every source; the intake channels close once this is dropped.
    pub async fn stop_all(mut self) {
        for (_, r) in self.running.drain() {
            r.stop().await;
        }
    }
}
