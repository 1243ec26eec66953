//! Logging setup: `RUST_LOG` (or `HOTFOLDERD_LOG`) picks the level; whisper.cpp's own
//! chatter is routed through the same filter and kept at warnings by default.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = std::env::var("HOTFOLDERD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},whisper_rs=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
