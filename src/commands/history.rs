//! `hotfolderd history PATH|KEY|ID`: one input's whole story from the journal — every
//! version of it that was seen, and for each every state change, retry, notification and
//! deletion, with times and reasons, across restarts. Training runs and model changes:
//! `history_training`.

use std::path::Path;
use std::process::ExitCode;

use super::history_training;
use crate::config::Config;
use crate::journal::Journal;
use crate::notify::document::rfc3339;

pub fn run(config_path: &Path, what: Option<&str>) -> ExitCode {
    let (config, journal) = match super::open_journal(config_path) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let Some(what) = what else {
        return super::exit_code(history_training::print(&journal, None));
    };
    match history_training::find(&journal, what) {
        Ok(Some(named)) => {
            return super::exit_code(history_training::print(&journal, Some(&named)))
        }
        Ok(None) => {}
        Err(e) => return super::exit_code(Err(e)),
    }
    let ids = match find(&journal, &config, what) {
        Ok(ids) => ids,
        Err(e) => return super::exit_code(Err(e)),
    };
    if ids.is_empty() {
        return super::exit_code(Err(format!(
            "nothing in the journal for {what:?} (give a file path, an S3 key or s3:// URI, an input id, a training run id, or model:ID; nothing at all for every run and model change)"
        )));
    }
    super::exit_code(ids.into_iter().try_for_each(|id| print_story(&journal, id)))
}

/// The inputs `what` names: an id, a path under a watched folder, or an S3 key / URI.
pub(super) fn find(j: &Journal, config: &Config, what: &str) -> Result<Vec<i64>, String> {
    let err = |e: crate::journal::JournalError| e.to_string();
    if let Ok(id) = what.trim_start_matches('#').parse::<i64>() {
        if j.get(id).map_err(err)?.is_some() {
            return Ok(vec![id]);
        }
    }
    let path = std::path::absolute(what).unwrap_or_else(|_| what.into());
    for w in &config.watch {
        let root =
            std::path::absolute(w.path.get_ref()).unwrap_or_else(|_| w.path.get_ref().clone());
        // A path in the folder, or in its done/ or failed/ where finished inputs go.
        let rel = path.strip_prefix(&root).ok().map(|rel| {
            let mut parts = rel.components();
            match parts.next().and_then(|c| c.as_os_str().to_str()) {
                Some(crate::sources::names::FAILED_DIR | crate::sources::names::DONE_DIR) => {
                    parts.as_path().to_path_buf()
                }
                _ => rel.to_path_buf(),
            }
        });
        if let Some(rel) = rel {
            let source = crate::daemon::SourceId::folder(&root).to_string();
            return j
                .inputs_named(Some(&source), &rel.to_string_lossy())
                .map_err(err);
        }
    }
    let key = what
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .map_or(what, |(_, key)| key);
    j.inputs_named(None, key).map_err(err)
}

fn print_story(j: &Journal, id: i64) -> Result<(), String> {
    let err = |e: crate::journal::JournalError| e.to_string();
    let Some(input) = j.get(id).map_err(err)? else {
        return Ok(());
    };
    println!(
        "#{} {} {} (version {}): {}, {} attempt(s){}",
        input.id,
        input.source,
        input.key,
        input.version,
        input.state.as_str(),
        input.attempts,
        input
            .sha256
            .as_deref()
            .map(|s| format!(", sha256 {s}"))
            .unwrap_or_default()
    );
    for (at, state, detail) in j.history(id).map_err(err)? {
        println!(
            "  {} {state}{}",
            rfc3339(at),
            detail.map(|d| format!(": {d}")).unwrap_or_default()
        );
    }
    for n in j.notifications_for(id).map_err(err)? {
        if n.state != "sent" {
            println!(
                "  (notification #{} {} → {}: {}, {} attempt(s){})",
                n.id,
                n.event,
                n.target,
                n.state,
                n.attempts,
                n.last_error.map(|e| format!(", {e}")).unwrap_or_default()
            );
        }
    }
    if !input.outputs.is_empty() {
        println!("  outputs: {}", input.outputs.join(", "));
    }
    if let Some(sha) = &input.sha256 {
        for c in j.corrections_of(sha).map_err(err)? {
            println!(
                "  {} corrected in dataset {} by {} (sha256 {}): {} piece(s), {:.1} s labelled \"human\"{}",
                rfc3339(c.at),
                c.dataset,
                c.file,
                c.file_sha256,
                c.pieces,
                c.seconds,
                match c.unused_cues {
                    0 => String::new(),
                    n => format!(", {n} cue(s) over audio the dataset did not keep"),
                }
            );
        }
    }
    println!();
    Ok(())
}
