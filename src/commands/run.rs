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
        let running = journal.running_progress()?;
        if !running.is_empty() {
            println!("\nrunning:");
            for r in running {
                let share = match r.total.filter(|t| *t > 0.0) {
                    Some(t) => format!(
                        "{:.0} % ({:.1} of {t:.1} s of audio)",
                        (r.done / t * 100.0).min(100.0),
                        r.done
                    ),
                    None => format!("{:.1} s of audio", r.done),
                };
                println!("  #{} {} {}: {share}", r.id, r.source, r.key);
            }
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

/// A skipped input is `done`, which is final: its row is retired and the file, as it is
/// now, is journaled anew and queued, so the running daemon (or the next start) decides
/// again (the subtitles it had may be gone).
fn retry_skipped(journal: &mut Journal, input: &crate::journal::Input) -> Result<String, String> {
    let root =
        crate::daemon::SourceId::root_of(&input.source).ok_or("is not a watched folder's input")?;
    let path = root.join(&input.key);
    let meta = crate::sources::fs::stat(&path)
        .ok_or_else(|| format!("{} is gone or not a regular file", path.display()))?;
    journal
        .retire_id(
            input.id,
            "retry requested: the skipped input is taken again",
        )
        .map_err(|e| e.to_string())?;
    let arrival = crate::journal::Arrival {
        source: input.source.clone(),
        key: input.key.clone(),
        version: meta.version(),
        size: meta.len,
        device: Some(meta.device),
    };
    journal.arrive(&[arrival]).map_err(|e| e.to_string())?;
    Ok(format!("{} re-queued", path.display()))
}

fn retry_one(journal: &mut Journal, id: i64) -> Result<String, String> {
    let input = journal
        .get(id)
        .map_err(|e| e.to_string())?
        .ok_or("no such input")?;
    if input.state == State::Done && journal.was_skipped(id).map_err(|e| e.to_string())? {
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
    if input.source == crate::journal::HTTP_SOURCE {
        return retry_upload(journal, &input);
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

/// An upload that failed: a quarantined one comes back from `uploads/quarantine/` first.
fn retry_upload(journal: &mut Journal, input: &crate::journal::Input) -> Result<String, String> {
    let job = journal
        .http_job(&input.key)
        .map_err(|e| e.to_string())?
        .ok_or("the upload has no request in the journal")?;
    let request = crate::daemon::api_request(&job.request).map_err(|e| e.to_string())?;
    let uploads = journal
        .path()
        .parent()
        .map_or_else(|| PathBuf::from("uploads"), |d| d.join("uploads"));
    let file = uploads.join(&request.stored_as);
    let parked = uploads
        .join(crate::job::QUARANTINE_DIR)
        .join(&request.stored_as);
    if parked.is_file() && !file.exists() {
        std::fs::rename(&parked, &file)
            .map_err(|e| format!("cannot move {} back: {e}", parked.display()))?;
    } else if !file.is_file() {
        return Err(format!(
            "the upload is gone (neither {} nor its copy in {})",
            file.display(),
            parked.display()
        ));
    }
    journal
        .transition(input.id, State::Queued, Some("retry requested"))
        .map_err(|e| e.to_string())?;
    Ok(format!("upload {} re-queued", input.key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Arrival, Arrived};

    /// A skipped film is retired and queued anew on retry, alone (another version's failed
    /// row stays as it is); a plain done input is refused.
    #[test]
    fn retry_takes_a_skipped_input_again_and_refuses_a_done_one() {
        let dir = tempfile::tempdir().unwrap();
        let films = dir.path().join("films");
        std::fs::create_dir_all(&films).unwrap();
        for name in ["Talk.mkv", "Other.mkv"] {
            std::fs::write(films.join(name), b"a film").unwrap();
        }
        let source = crate::daemon::SourceId::folder(&films).to_string();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let arrival = |key: &str, version: &str| Arrival {
            source: source.clone(),
            key: key.into(),
            version: version.into(),
            size: 6,
            device: None,
        };
        j.arrive(&[arrival("Talk.mkv", "v1"), arrival("Other.mkv", "v1")])
            .unwrap();
        let mut ids = std::collections::HashMap::new();
        for _ in 0..2 {
            let row = j.claim_next().unwrap().unwrap();
            match row.key.as_str() {
                "Other.mkv" => j.finish_skipped(row.id, "it has subtitles", None).unwrap(),
                _ => j.finish(row.id, &[], None).unwrap(),
            }
            ids.insert(row.key.clone(), row.id);
        }
        // An older version of Other.mkv that failed.
        j.arrive(&[arrival("Other.mkv", "v0")]).unwrap();
        let old = j.claim_next().unwrap().unwrap();
        j.transition(old.id, State::Failed, Some("x")).unwrap();

        let refused = retry_one(&mut j, ids["Talk.mkv"]).unwrap_err();
        assert!(refused.contains("is done, not failed"), "{refused}");
        retry_one(&mut j, ids["Other.mkv"]).unwrap();
        let queued = j.claim_next().unwrap().unwrap();
        assert_eq!(queued.key, "Other.mkv");
        assert_ne!(queued.id, ids["Other.mkv"], "a new row");
        assert_eq!(j.get(old.id).unwrap().unwrap().version, "v0", "left alone");
        // The old row's version is retired: arriving as v1 again is not the skipped row.
        let again = j.arrive(&[arrival("Other.mkv", "v1")]).unwrap();
        assert!(matches!(again[0], Arrived::Queued(_)), "{again:?}");
    }
}
