//! `hotfolderd model list | promote ID | rollback`: the model registry in the journal. A
//! change is one journal transaction; a running daemon sees it within seconds and swaps the
//! model in for its next jobs (jobs already running finish on theirs).

use std::path::Path;
use std::process::ExitCode;

use crate::journal::{Journal, ModelRow, ModelState, RegistryError};
use crate::notify::document::model_json;

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

pub fn list(config: &Path, as_json: bool) -> ExitCode {
    let (_, journal) = match super::open_journal(config) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let models = match journal.models() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if as_json {
        let rows: Vec<_> = models.iter().map(model_json).collect();
        println!("{}", serde_json::Value::Array(rows));
        return ExitCode::SUCCESS;
    }
    if models.is_empty() {
        println!("no models registered yet: the daemon registers [asr] model when it starts");
        return ExitCode::SUCCESS;
    }
    println!(
        "{:>4}  {:<9}  {:<12}  {:>7}  {:>8}  {:<12}  {:<28}  path",
        "id", "state", "sha256", "wer", "baseline", "parent", "run"
    );
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |w| format!("{w:.4}"));
    for m in &models {
        let l = &m.lineage;
        println!(
            "{:>4}  {:<9}  {:<12}  {:>7}  {:>8}  {:<12}  {:<28}  {}{}",
            m.id,
            m.state.as_str(),
            short(&m.sha256),
            f(l.wer),
            f(l.baseline_wer),
            l.parent_sha256.as_deref().map_or("-", short),
            l.run_id.as_deref().unwrap_or("-"),
            m.path.display(),
            if m.removed_at.is_some() {
                "  (file removed: keep_candidates)"
            } else {
                ""
            }
        );
    }
    ExitCode::SUCCESS
}

/// `model promote ID` (`Some`) or `model rollback` (`None`).
pub fn switch(config: &Path, id: Option<i64>) -> ExitCode {
    let (_, mut journal) = match super::open_journal(config) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    match change(&mut journal, id) {
        Ok(m) => {
            println!(
                "model {} ({}) serves now: {}; a running daemon swaps it in within seconds, and jobs already running finish on their model",
                m.id,
                short(&m.sha256),
                m.path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SwitchError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("model {id}'s file {} is missing: it cannot serve", .path.display())]
    Missing { id: i64, path: std::path::PathBuf },
}

fn change(journal: &mut Journal, id: Option<i64>) -> Result<ModelRow, SwitchError> {
    // The file must be there before the registry says it serves.
    let target = match id {
        Some(id) => journal
            .models()?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or(RegistryError::NoSuchModel(id))?,
        None => journal.model_rollback_target()?,
    };
    if !target.path.is_file() {
        return Err(SwitchError::Missing {
            id: target.id,
            path: target.path,
        });
    }
    Ok(match id {
        Some(id) => journal.model_promote(id)?,
        None => journal.model_rollback_to(Some(target.id))?,
    })
}

/// `hotfolderd status`'s lines on the serving model and its latest evaluation.
pub fn status_lines(models: &[ModelRow]) -> Vec<String> {
    let Some(serving) = models.iter().find(|m| m.state == ModelState::Serving) else {
        return Vec::new();
    };
    let l = &serving.lineage;
    let mut lines = vec![format!(
        "\nmodel serving: #{} {} {}{}",
        serving.id,
        short(&serving.sha256),
        serving.path.display(),
        match (&l.run_id, l.wer, l.baseline_wer) {
            (Some(run), Some(wer), Some(base)) =>
                format!(" (from run {run}: held-out WER {wer:.4} against its parent's {base:.4})"),
            _ => String::new(),
        }
    )];
    // The newest run that started from it scored it against that run's candidate.
    let latest = models
        .iter()
        .filter(|m| m.lineage.parent_sha256.as_deref() == Some(serving.sha256.as_str()))
        .max_by_key(|m| (m.created_at, m.id));
    if let Some(c) = latest {
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |w| format!("{w:.4}"));
        lines.push(format!(
            "  latest evaluation: run {} scored it {} against candidate #{}'s {} ({})",
            c.lineage.run_id.as_deref().unwrap_or("-"),
            f(c.lineage.baseline_wer),
            c.id,
            f(c.lineage.wer),
            c.state.as_str()
        ));
    }
    lines
}
