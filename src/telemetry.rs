//! Logging setup: `RUST_LOG` (or `HOTFOLDERD_LOG`) picks the level; whisper.cpp's own
//! chatter is routed through the same filter and kept at warnings by default. Under systemd
//! (its journal connected to our stderr: `JOURNAL_STREAM`) logs go to the journal with their
//! fields; otherwise to stderr as text, or as JSON lines with `HOTFOLDERD_LOG_FORMAT=json`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn init(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = std::env::var("HOTFOLDERD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},whisper_rs=warn,whisper_cpp=warn")));
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = registry
                .with(journald.with_syslog_identifier("hotfolderd".into()))
                .try_init();
            return;
        }
    }
    let json = std::env::var("HOTFOLDERD_LOG_FORMAT").is_ok_and(|f| f == "json");
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
}
