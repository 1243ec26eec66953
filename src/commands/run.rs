use std::path::Path;
use std::process::ExitCode;

use std::path::PathBuf;

use crate::journal::{Journal, State};
use crate::sources::names::FAILED_DIR;

pub fn run(path: &Path) -> ExitCode {
    let config = match super::load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hotfolderd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    super::exit_code(runtime.block_on(crate::daemon::run(config, path.to_path_buf())))
}

pub fn status(path: &Path) -> ExitCode {
    let (config, journal) = match super::open_journal(path) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let result = journal.counts().and_then(|counts| {
        for (state, n) in counts {
            println!("{:<12} {n}", state.as_str());
        }
        let failures = journal.recent_failures(10)?;
        if !failures.is_empty() {
            println!("\nlatest failures:");
            for (id, source, key, reason) in failures {
                println!("  #{id} {source} {key}: {reason}");
            }
        }
        match super::notify::status_lines(&journal) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => eprintln!("hotfolderd: notifications: {e}"),
        }
        for line in super::registry::status_lines(&journal.models()?) {
            println!("{line}");
        }
        for d in &config.dataset {
            let name = d.name.get_ref();
            let ledger = journal.ledger(name)?;
            let threshold = *d.train_after_hours.get_ref();
            println!(
                "\ndataset {name}: {:.3} h in all, {:.3} h new of {threshold} h before the next run ({:.0} %)",
                ledger.total_seconds / 3600.0,
                ledger.new_seconds / 3600.0,
                (ledger.new_seconds / 3600.0 / threshold * 100.0).min(100.0)
            );
            for r in journal.runs(Some(name))?.into_iter().take(5) {
                println!(
                    "  run {} {} ({:.3} h){}",
                    r.id,
                    r.state.as_str(),
                    r.seconds / 3600.0,
                    r.detail.map(|d| format!(": {d}")).unwrap_or_default()
                );
            }
        }
        Ok(())
    });
    super::exit_code(result)
}

/// Moves each failed input back from `failed/` and re-queues it; the running daemon (or the
/// next start) processes it again.
pub fn retry(path: &Path, ids: &[i64], all_failed: bool) -> ExitCode {
    let (_, mut journal) = match super::open_journal(path) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let ids = if all_failed {
        match journal.failed_ids() {
            Ok(ids) => ids,
            Err(e) => return super::exit_code(Err(e)),
        }
    } else {
        ids.to_vec()
    };
    let mut failures = 0;
    for id in ids {
        match retry_one(&mut journal, id) {
            Ok(msg) => println!("#{id}: {msg}"),
            Err(msg) => {
                failures += 1;
                eprintln!("hotfolderd: #{id}: {msg}");
            }
        }
    }
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Whether input `id` ended skipped (a media library's film that had subtitles).
fn was_skipped(journal: &Journal, id: i64) -> Result<bool, String> {
    let history = journal.history(id).map_err(|e| e.to_string())?;
    Ok(history.iter().any(|(_, event, _)| event == "skipped"))
}

/// A skipped input is `done`, which is final: its row is retired instead, so the folder's
/// next scan journals the file anew and decides again (the subtitles it had may be gone).
fn retry_skipped(journal: &mut Journal, input: &crate::journal::Input) -> Result<String, String> {
    journal
        .retire_key(
            &input.source,
            &input.key,
            "retry requested: the skipped input is taken again",
        )
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{} {} will be taken again at the folder's next scan (rescan_every) or the daemon's next start",
        input.source, input.key
    ))
}

fn retry_one(journal: &mut Journal, id: i64) -> Result<String, String> {
    let input = journal
        .get(id)
        .map_err(|e| e.to_string())?
        .ok_or("no such input")?;
    if input.state == State::Done && was_skipped(journal, id)? {
        return retry_skipped(journal, &input);
    }
    if !matches!(input.state, State::Failed | State::Quarantined) {
        return Err(format!("is {}, not failed", input.state.as_str()));
    }
    if input.key.starts_with("message:") {
        return Err(
            "is a malformed SQS message (its body is in the journal); nothing to retry".into(),
        );
    }
    let Some(root) = crate::daemon::SourceId::root_of(&input.source) else {
        // An S3 object: nothing was moved; the daemon fetches it again.
        journal
            .transition(id, State::Queued, Some("retry requested"))
            .map_err(|e| e.to_string())?;
        return Ok(format!("{} {} re-queued", input.source, input.key));
    };
    let rel = PathBuf::from(&input.key);
    let original = root.join(&rel);
    let parked = root.join(FAILED_DIR).join(&rel);
    if parked.is_file() {
        if original.exists() {
            return Err(format!(
                "{} exists again; not overwriting it",
                original.display()
            ));
        }
        std::fs::rename(&parked, &original)
            .map_err(|e| format!("cannot move {} back: {e}", parked.display()))?;
        let mut report = parked.into_os_string();
        report.push(".error.json");
        let _ = std::fs::remove_file(PathBuf::from(report));
    } else if !original.is_file() {
        return Err(format!(
            "the input is gone (neither {} nor its copy in {FAILED_DIR}/)",
            original.display()
        ));
    }
    journal
        .transition(id, State::Queued, Some("retry requested"))
        .map_err(|e| e.to_string())?;
    Ok(format!("{} re-queued", original.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Arrival;

    /// A skipped film is retired on retry, so it is journaled anew; a plain done input is not.
    #[test]
    fn retry_takes_a_skipped_input_again_and_refuses_a_done_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let arrival = |key: &str| Arrival {
            source: "/films".into(),
            key: key.into(),
            version: "1:2:3".into(),
            size: 1,
            device: None,
        };
        j.arrive(&[arrival("Talk.mkv"), arrival("Other.mkv")])
            .unwrap();
        for _ in 0..2 {
            let row = j.claim_next().unwrap().unwrap();
            j.finish(row.id, &[], None).unwrap();
            if row.key == "Other.mkv" {
                j.note(row.id, "skipped", "it already has subtitles in en")
                    .unwrap();
            }
        }
        let id_of = |j: &Journal, key: &str| {
            (1..=2)
                .find(|id| j.get(*id).unwrap().unwrap().key == key)
                .unwrap()
        };
        let (talk, other) = (id_of(&j, "Talk.mkv"), id_of(&j, "Other.mkv"));
        assert!(retry_one(&mut j, talk)
            .unwrap_err()
            .contains("is done, not failed"));
        assert!(retry_one(&mut j, other).unwrap().contains("taken again"));
        let again = j
            .arrive(&[arrival("Other.mkv"), arrival("Talk.mkv")])
            .unwrap();
        assert!(
            matches!(again[0], crate::journal::Arrived::Queued(_)),
            "{again:?}"
        );
        assert!(
            matches!(again[1], crate::journal::Arrived::Known(..)),
            "{again:?}"
        );
    }
}
