//! Talking to systemd (`Type=notify`), when `NOTIFY_SOCKET` says it is listening: READY=1
//! once the journal is open, the model loaded and the sources started; STATUS= lines with
//! the queue and the current job; WATCHDOG=1 pings only while the pipeline is healthy (the
//! journal takes a write, no job is past its time limit), so a wedged daemon is restarted
//! rather than kept alive by a timer; STOPPING=1 on the way out.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use super::Shared;
use crate::journal::State;

/// How often STATUS= is refreshed when there is no watchdog (or it is slower).
const STATUS_EVERY: Duration = Duration::from_secs(5);

pub(super) fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Tells systemd the daemon is ready, keeps STATUS= and the watchdog going, and says
/// STOPPING=1 at the end.
pub(super) async fn report(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    if !under_systemd() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    let status = status_line(&shared).await.unwrap_or_default();
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    tracing::info!(?watchdog, "told systemd we are ready");
    let mut healthy_before = true;
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    send(&[NotifyState::Stopping, NotifyState::Status("stopping: finishing running jobs")]);
                    return;
                }
            }
            _ = tokio::time::sleep(every) => {}
        }
        let Some(status) = tokio::time::timeout(every, status_line(&shared))
            .await
            .ok()
            .flatten()
        else {
            if healthy_before {
                tracing::error!("the journal does not answer; withholding watchdog pings");
            }
            healthy_before = false;
            continue;
        };
        let healthy = jobs_within_limits(&shared);
        if healthy != healthy_before {
            if healthy {
                tracing::info!("pipeline healthy again; watchdog pings resume");
            } else {
                tracing::error!("a job is far past its time limit; withholding watchdog pings");
            }
        }
        healthy_before = healthy;
        if watchdog.is_some() && healthy {
            send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else {
            send(&[NotifyState::Status(&status)]);
        }
    }
}

/// "N queued, M running (current: key)", after proving the journal takes a write; `None`
/// if it cannot.
async fn status_line(shared: &Arc<Shared>) -> Option<String> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || {
        let mut j = s.journal();
        j.probe().ok()?;
        let counts = j.counts().ok()?;
        let count = |st: State| counts.iter().find(|(c, _)| *c == st).map_or(0, |(_, n)| *n);
        let running: Vec<i64> = s.running().keys().copied().collect();
        let current = running
            .first()
            .and_then(|id| j.get(*id).ok().flatten())
            .map(|i| format!(" (current: {})", i.key))
            .unwrap_or_default();
        Some(format!(
            "{} queued, {} running{current}, {} done, {} failed",
            count(State::Queued),
            running.len(),
            count(State::Done),
            count(State::Failed) + count(State::Quarantined)
        ))
    })
    .await
    .ok()
    .flatten()
}

/// No running job has gone on past the longest time limit a job can have (`job_timeout_max`)
/// plus a minute: the limit stops a job, so one still running then is wedged.
fn jobs_within_limits(shared: &Shared) -> bool {
    let most = shared.asr_limits.max + Duration::from_secs(60);
    shared
        .running()
        .values()
        .all(|job| job.started.elapsed() <= most)
}

/// Re-reads the configuration at `path` on every SIGHUP and hands it on; a configuration
/// with problems is refused (each problem logged) and the running one stays.
/// `hangups` was set up before the model loaded, so a SIGHUP then is kept for now.
pub(super) async fn reload_on_sighup(
    path: std::path::PathBuf,
    hangups: std::io::Result<tokio::signal::unix::Signal>,
    tx: tokio::sync::mpsc::Sender<crate::config::Config>,
) {
    let Ok(mut hup) = hangups else {
        tracing::warn!("cannot listen for SIGHUP; reloading is off");
        return;
    };
    while hup.recv().await.is_some() {
        match crate::config::Config::load(&path) {
            Ok(config) => {
                if tx.send(config).await.is_err() {
                    return;
                }
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!(problem = %p, "reload refused");
                }
                tracing::error!(config = %path.display(), problems = problems.len(), "the new configuration has problems; still running the previous one");
            }
        }
    }
}

/// Applies a new configuration's sources, telling systemd while it does.
pub(super) async fn reload(sources: &mut super::sources::Sources, config: &crate::config::Config) {
    if under_systemd() {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        send(&states);
    }
    let (started, stopped) = sources.apply(config).await;
    let (folders, queues) = sources.counts();
    tracing::info!(
        started,
        stopped,
        folders,
        queues,
        "configuration reloaded ([[watch]], [[s3]] and the decoding settings they use from [asr], [profiles] and [subtitles] apply now; [asr] model and the other sections at the next restart)"
    );
    if under_systemd() {
        send(&[NotifyState::Ready]);
    }
}
