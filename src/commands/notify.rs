//! `hotfolderd notify list|resend`: the notification outbox, and sending undeliverable
//! notifications again (same delivery key, so receivers still drop duplicates).

use std::process::ExitCode;

use crate::cli::NotifyCommand;
use crate::journal::Journal;
use crate::notify::document::rfc3339;

pub fn run(cmd: NotifyCommand) -> ExitCode {
    let (NotifyCommand::List { config, .. } | NotifyCommand::Resend { config, .. }) = &cmd;
    let mut journal = match super::open_journal(config) {
        Ok((_, journal)) => journal,
        Err(code) => return code,
    };
    super::exit_code(match cmd {
        NotifyCommand::List { state, .. } => list(&journal, &state),
        NotifyCommand::Resend { ids, dead, .. } => resend(&mut journal, &ids, dead),
    })
}

fn resend(j: &mut Journal, ids: &[i64], dead: bool) -> Result<(), String> {
    if ids.is_empty() && !dead {
        return Err("name notification ids, or --dead for every dead one".into());
    }
    let n = j.resend_notifications(ids).map_err(|e| e.to_string())?;
    println!("{n} notification(s) queued again; the running daemon sends them");
    if n < ids.len() {
        return Err(format!(
            "{} of the ids are not dead notifications",
            ids.len() - n
        ));
    }
    Ok(())
}

fn list(j: &Journal, state: &str) -> Result<(), String> {
    for n in j.notifications(state, 100).map_err(|e| e.to_string())? {
        let about = match (&n.input_id, &n.run_id, n.model_id) {
            (Some(id), _, _) => format!("input #{id}"),
            (_, Some(run), _) => format!("run {run}"),
            (_, _, Some(model)) => format!("model #{model}"),
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
    let held = match c.held {
        0 => String::new(),
        n => format!(", {n} held until their run is in S3"),
    };
    let mut out = vec![format!(
        "\nnotifications: {} sent, {} pending{held}, {} undeliverable",
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
