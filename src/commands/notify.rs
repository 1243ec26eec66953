//! `hotfolderd notify list|resend`: the notification outbox, and sending undeliverable
//! notifications again (same delivery key, so receivers still drop duplicates).

use std::path::Path;
use std::process::ExitCode;

use crate::cli::NotifyCommand;
use crate::config::Config;
use crate::journal::Journal;
use crate::notify::document::rfc3339;

fn open(path: &Path) -> Result<Journal, String> {
    let config = Config::load(path).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Journal::open(&config.journal.path).map_err(|e| e.to_string())
}

pub fn run(cmd: NotifyCommand) -> ExitCode {
    let result = match cmd {
        NotifyCommand::List { config, state } => open(&config).and_then(|j| list(&j, &state)),
        NotifyCommand::Resend { config, ids, dead } => open(&config).and_then(|mut j| {
            if ids.is_empty() && !dead {
                return Err("name notification ids, or --dead for every dead one".into());
            }
            let n = j.resend_notifications(&ids).map_err(|e| e.to_string())?;
            println!("{n} notification(s) queued again; the running daemon sends them");
            if n < ids.len() {
                return Err(format!(
                    "{} of the ids are not dead notifications",
                    ids.len() - n
                ));
            }
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list(j: &Journal, state: &str) -> Result<(), String> {
    for n in j.notifications(state, 100).map_err(|e| e.to_string())? {
        let about = match (&n.input_id, &n.run_id) {
            (Some(id), _) => format!("input #{id}"),
            (_, Some(run)) => format!("run {run}"),
            _ => String::new(),
        };
        println!(
            "#{} {} {} {} → {} (delivery {}, {} attempts){}",
            n.id,
            rfc3339(n.created_at),
            n.event,
            about,
            n.target,
            n.delivery,
            n.attempts,
            n.last_error.map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// The outbox lines of `hotfolderd status`.
pub fn status_lines(j: &Journal) -> Result<Vec<String>, String> {
    let c = j.outbox_counts().map_err(|e| e.to_string())?;
    if c == Default::default() {
        return Ok(Vec::new());
    }
    let mut out = vec![format!(
        "\nnotifications: {} sent, {} pending, {} undeliverable",
        c.sent, c.pending, c.dead
    )];
    for n in j.notifications("dead", 10).map_err(|e| e.to_string())? {
        out.push(format!(
            "  #{} {} → {}: {} (hotfolderd notify resend {})",
            n.id,
            n.event,
            n.target,
            n.last_error.unwrap_or_default(),
            n.id
        ));
    }
    Ok(out)
}
