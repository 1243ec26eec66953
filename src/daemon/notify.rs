//! The outbox sender: takes due notifications from the journal, builds each document from
//! the journal (fresh presigned links on every attempt), sends it, and records the outcome.
//! A notification stays in the journal until it is delivered or given up, so a crash or a
//! receiver outage delays it but never loses it. One that is cut off mid-send goes out again
//! after a restart under the same delivery key, which receivers use to drop duplicates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OnceCell};

use super::{DaemonError, Shared, SourceId};
use crate::config::{Config, NotifyKind};
use crate::journal::{Notification, Subscription};
use crate::notify::document::{self, InputFacts, Origin, Output, RunArtifacts};
use crate::notify::{send_sns, send_sqs, webhook, Sent, Target};

/// How often an idle sender looks for new notifications (a finished job wakes it at once;
/// this catches retries coming due and training runs).
const POLL: Duration = Duration::from_millis(500);

/// A `training_finished` lists at most this many of the run's files (the folder names all).
const MAX_ARTIFACTS: usize = 100;

/// At most this many notifications in flight at once.
const BATCH: usize = 32;

/// The `[[notify]]` subscriptions, by journal source id.
pub(super) fn subscriptions(config: &Config) -> Vec<Subscription> {
    config
        .notify
        .iter()
        .map(|n| Subscription {
            target: n.target(),
            events: n.events.get_ref().clone(),
            sources: n
                .sources
                .iter()
                .flat_map(|s| s.get_ref())
                .map(|s| {
                    if s == "http" {
                        return SourceId::Http.to_string();
                    }
                    match config
                        .watch
                        .iter()
                        .find(|w| w.path.get_ref().to_string_lossy() == *s)
                    {
                        Some(w) => SourceId::folder(&super::absolute(w.path.get_ref())),
                        None => SourceId::queue(s),
                    }
                    .to_string()
                })
                .collect(),
        })
        .collect()
}

struct Sender {
    target: Target,
    /// AWS clients, made when first needed (presigned links, SQS).
    aws: OnceCell<crate::aws::Clients>,
}

impl Sender {
    async fn aws(&self) -> &crate::aws::Clients {
        self.aws
            .get_or_init(|| crate::aws::clients(self.target.force_path_style))
            .await
    }
}

pub(super) struct Notifier {
    senders: HashMap<String, Arc<Sender>>,
    /// The key that signs HTTP jobs' own callbacks (`[http] callback_secret_file`).
    callback_secret: Option<Vec<u8>>,
    http: reqwest::Client,
}

impl Notifier {
    /// Reads every target's secret: a missing key stops the start, with the reason.
    pub(super) fn new(config: &Config) -> Result<Notifier, DaemonError> {
        let mut senders = HashMap::new();
        for c in &config.notify {
            let target = Target::from_config(c).map_err(DaemonError::Setup)?;
            let sender = Sender {
                target,
                aws: OnceCell::new(),
            };
            senders.insert(sender.target.name.clone(), Arc::new(sender));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("hotfolderd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DaemonError::Setup(format!("cannot make an HTTP client: {e}")))?;
        let callback_secret = config
            .http
            .as_ref()
            .filter(|h| h.api)
            .and_then(|h| h.callback_secret_file.as_deref())
            .map(|path| {
                crate::notify::read_secret(path)
                    .map_err(|e| DaemonError::Setup(format!("http.callback_secret_file {e}")))
            })
            .transpose()?;
        Ok(Notifier {
            senders,
            callback_secret,
            http,
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.senders.is_empty() && self.callback_secret.is_none()
    }

    /// The sender of outbox row `target`: a `[[notify]]` target, or an HTTP job's own
    /// callback URL (a webhook with the default limits, signed with the callback key).
    fn sender(&self, target: &str) -> Option<Arc<Sender>> {
        if let Some(s) = self.senders.get(target) {
            return Some(s.clone());
        }
        let url = target.strip_prefix(crate::journal::CALLBACK_TARGET)?;
        let secret = self.callback_secret.clone()?;
        Some(Arc::new(Sender {
            target: Target::callback(url, secret),
            aws: OnceCell::new(),
        }))
    }
}

/// Sends due notifications until `stop`.
pub(super) async fn send_loop(
    shared: Arc<Shared>,
    notifier: Notifier,
    mut stop: watch::Receiver<bool>,
) {
    let notifier = Arc::new(notifier);
    let mut unknown_said = std::collections::HashSet::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let due = shared.journal().due_notifications(BATCH);
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the notification outbox; trying again");
                Vec::new()
            }
        };
        let full = due.len() == BATCH;
        let mut sends = tokio::task::JoinSet::new();
        for n in due {
            let Some(sender) = notifier.sender(&n.target) else {
                if unknown_said.insert(n.target.clone()) {
                    tracing::warn!(target = %n.target, "notifications for a target no longer configured wait until it is back (or `hotfolderd notify resend` after it is)");
                }
                let _ = shared.journal().notification_retry(
                    n.id,
                    "its [[notify]] target is not configured",
                    3_600_000,
                );
                continue;
            };
            let (s, http) = (shared.clone(), notifier.http.clone());
            sends.spawn(async move {
                let sent = deliver(&s, &sender, &http, &n).await;
                (n, sender, sent)
            });
        }
        while let Some(done) = sends.join_next().await {
            if let Ok((n, sender, sent)) = done {
                record(&shared, &sender.target, &n, sent);
            }
        }
        if full {
            // A backlog (a receiver back after an outage): keep going.
            continue;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = shared.outbox_wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

fn record(shared: &Shared, target: &Target, n: &Notification, sent: Sent) {
    let mut j = shared.journal();
    let recorded = match sent {
        Sent::Delivered => {
            tracing::info!(event = %n.event, target = %n.target, delivery = %n.delivery, "notified");
            j.notification_sent(n)
        }
        Sent::Retry(why) if (n.attempts + 1) < i64::from(target.max_attempts) => {
            let wait = target.backoff(n.attempts as u32);
            tracing::warn!(event = %n.event, target = %n.target, error = %why, ?wait, attempt = n.attempts + 1, "notification not delivered; will retry");
            j.notification_retry(n.id, &why, wait.as_millis() as i64)
        }
        Sent::Retry(why) => {
            let why = format!("{why} (gave up after {} attempts)", n.attempts + 1);
            tracing::error!(event = %n.event, target = %n.target, error = %why, "notification undeliverable; `hotfolderd notify resend` sends it again");
            j.notification_dead(n, &why)
        }
        Sent::Refused(why) => {
            tracing::error!(event = %n.event, target = %n.target, error = %why, "notification refused by the receiver; not retried");
            j.notification_dead(n, &format!("refused: {why}"))
        }
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, delivery = %n.delivery, "cannot record a notification's outcome; it may be sent again under the same key");
    }
}

async fn deliver(
    shared: &Shared,
    sender: &Sender,
    http: &reqwest::Client,
    n: &Notification,
) -> Sent {
    let body = match build(shared, sender, n).await {
        Ok(doc) => doc.to_string(),
        Err(why) => return Sent::Refused(why),
    };
    let t = &sender.target;
    let send = async {
        match t.kind {
            NotifyKind::Webhook => {
                webhook::post(
                    http,
                    &t.name,
                    &t.secret,
                    body,
                    &n.delivery,
                    &n.event,
                    t.timeout,
                )
                .await
            }
            NotifyKind::Sqs => {
                send_sqs(
                    &sender.aws().await.sqs,
                    &t.name,
                    &body,
                    &n.delivery,
                    &n.event,
                )
                .await
            }
            NotifyKind::Sns => {
                send_sns(
                    &sender.aws().await.sns,
                    &t.name,
                    &body,
                    &n.delivery,
                    &n.event,
                )
                .await
            }
        }
    };
    // The webhook has its own timeout; this one also bounds the SDK's retries.
    tokio::time::timeout(t.timeout * 2, send)
        .await
        .unwrap_or_else(|_| Sent::Retry(format!("no answer within {:?}", t.timeout * 2)))
}

/// The document for `n`, from what the journal knows now.
async fn build(
    shared: &Shared,
    sender: &Sender,
    n: &Notification,
) -> Result<serde_json::Value, String> {
    if let Some(model_id) = n.model_id {
        let models = shared.journal().models().map_err(|e| e.to_string())?;
        let model = models
            .iter()
            .find(|m| m.id == model_id)
            .ok_or_else(|| format!("model {model_id} is not in the registry"))?;
        return Ok(document::model_document(n, model));
    }
    if let Some(run_id) = &n.run_id {
        let runs = shared.journal().runs(None).map_err(|e| e.to_string())?;
        let run = runs
            .iter()
            .find(|r| &r.id == run_id)
            .ok_or_else(|| format!("training run {run_id} is not in the journal"))?;
        if n.event != "training_finished" {
            return Ok(document::run_document(n, run, None));
        }
        let artifacts = run_artifacts(shared, sender, run).await?;
        return Ok(document::run_document(n, run, artifacts.as_ref()));
    }
    let id = n.input_id.ok_or("a notification about nothing")?;
    let (input, result, history, seen_at) = {
        let j = shared.journal();
        let input = j
            .get(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("input {id} is not in the journal"))?;
        let result = j.result(id).map_err(|e| e.to_string())?;
        let history = j.history(id).map_err(|e| e.to_string())?;
        let seen_at = j.seen_at(id).map_err(|e| e.to_string())?;
        (input, result, history, seen_at)
    };
    let origin = match SourceId::parse(&input.source) {
        Some(SourceId::Folder(root)) => Origin::Folder {
            folder: root.display().to_string(),
            path: root.join(&input.key).display().to_string(),
        },
        Some(id @ SourceId::Queue(_)) => Origin::S3 {
            bucket: shared.queue(&id).map(|q| q.spec.input_bucket.clone()),
            queue_url: match id {
                SourceId::Queue(url) => url,
                SourceId::Folder(_) | SourceId::Http => String::new(),
            },
            key: input.key.clone(),
        },
        Some(SourceId::Http) => Origin::Http {
            job_id: input.key.clone(),
            filename: shared
                .journal()
                .http_job(&input.key)
                .ok()
                .flatten()
                .and_then(|j| super::api::Request::parse(&j.request).ok())
                .map(|r| r.filename)
                .unwrap_or_default(),
        },
        // A source this version does not know: named as the journal spells it.
        None => Origin::S3 {
            queue_url: input.source.clone(),
            bucket: None,
            key: input.key.clone(),
        },
    };
    let outputs = if n.event == "done" {
        links(sender, &input.outputs).await
    } else {
        Vec::new()
    };
    let facts = InputFacts {
        input: &input,
        origin,
        outputs,
        result,
        history: &history,
        seen_at,
    };
    Ok(document::input_document(n, &facts))
}

/// A finished run's folder and files (S3 URIs with presigned links for an `s3://` dataset,
/// whose run is complete there by now: its notification was held until then), and the
/// candidate it registered. `None` for a dataset no longer configured.
async fn run_artifacts(
    shared: &Shared,
    sender: &Sender,
    run: &crate::journal::Run,
) -> Result<Option<RunArtifacts>, String> {
    let Some(d) = shared.datasets.iter().find(|d| d.name == run.dataset) else {
        return Ok(None);
    };
    let candidate = shared
        .journal()
        .models()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|m| m.lineage.run_id.as_deref() == Some(run.id.as_str()));
    let folder = crate::training::run::run_dir(d, &run.id);
    // Checkpoints last: the list is cut at MAX_ARTIFACTS (SNS and SQS take 256 KB at most).
    let mut all = crate::training::run::files_under(&folder);
    all.sort_by_key(|f| f.to_string_lossy().contains("/output/checkpoint-"));
    let left_out = all.len().saturating_sub(MAX_ARTIFACTS);
    let files: Vec<(String, u64, String)> = all
        .into_iter()
        .take(MAX_ARTIFACTS)
        .filter_map(|f| {
            let name = f.strip_prefix(&folder).ok()?.to_string_lossy().into_owned();
            if name == crate::dataset::s3_sync::UPLOADED {
                return None;
            }
            let bytes = std::fs::metadata(&f).map_or(0, |m| m.len());
            let at = match &d.remote {
                Some(r) => crate::dataset::s3_sync::uri(r, f.strip_prefix(&d.root).ok()?),
                None => f.display().to_string(),
            };
            Some((name, bytes, at))
        })
        .collect();
    let path_style = d.remote.as_ref().map(|r| r.force_path_style);
    let at: Vec<String> = files.iter().map(|(_, _, at)| at.clone()).collect();
    let linked = links_styled(sender, &at, path_style).await;
    Ok(Some(RunArtifacts {
        folder: folder.display().to_string(),
        uri: d.remote.as_ref().map(|r| {
            let rel = folder.strip_prefix(&d.root).unwrap_or(&folder);
            format!("{}/", crate::dataset::s3_sync::uri(r, rel))
        }),
        files: files
            .into_iter()
            .zip(linked)
            .map(|((name, bytes, _), o)| (name, bytes, o))
            .collect(),
        files_left_out: left_out,
        candidate,
    }))
}

/// Local paths as they are; S3 outputs with a presigned GET link.
async fn links(sender: &Sender, outputs: &[String]) -> Vec<Output> {
    links_styled(sender, outputs, None).await
}

/// The same, presigned with path-style addressing as `path_style` says (a dataset's bucket
/// may differ from the target's); `None`: as the target says.
async fn links_styled(
    sender: &Sender,
    outputs: &[String],
    path_style: Option<bool>,
) -> Vec<Output> {
    let expiry = sender.target.link_expiry;
    let own = path_style.is_none_or(|p| p == sender.target.force_path_style);
    let other = if own {
        None
    } else {
        Some(crate::aws::clients(path_style.unwrap_or_default()).await)
    };
    let mut out = Vec::with_capacity(outputs.len());
    for o in outputs {
        let Some((bucket, key)) = o.strip_prefix("s3://").and_then(|r| r.split_once('/')) else {
            out.push(Output::Path(o.clone()));
            continue;
        };
        let s3 = match &other {
            Some(c) => &c.s3,
            None => &sender.aws().await.s3,
        };
        let url = match aws_sdk_s3::presigning::PresigningConfig::expires_in(expiry) {
            Ok(config) => s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .presigned(config)
                .await
                .map(|p| p.uri().to_string())
                .map_err(|e| tracing::warn!(uri = %o, error = %e, "cannot presign an output link"))
                .ok(),
            Err(_) => None,
        };
        out.push(Output::S3 {
            uri: o.clone(),
            url,
            expires_at: document::now_ms() + expiry.as_millis() as i64,
        });
    }
    out
}
