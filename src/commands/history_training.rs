//! `hotfolderd history` for training: with no argument, every training run and every change
//! of the model registry, oldest first; with a run id, that run's story and its candidate's;
//! with `model:ID` or a model's sha256 (8 characters or more), that model's.

use crate::journal::{Event, Journal, ModelRow, Run};
use crate::notify::document::rfc3339;

/// What `what` names among runs and models, if anything.
pub(super) enum Named {
    Run(Box<Run>),
    Model(Box<ModelRow>),
}

pub(super) fn find(j: &Journal, what: &str) -> Result<Option<Named>, String> {
    let err = |e: crate::journal::JournalError| e.to_string();
    if let Some(run) = j
        .runs(None)
        .map_err(err)?
        .into_iter()
        .find(|r| r.id == what)
    {
        return Ok(Some(Named::Run(Box::new(run))));
    }
    let models = j.models().map_err(err)?;
    let by_id = what
        .strip_prefix("model:")
        .and_then(|id| id.trim_start_matches('#').parse::<i64>().ok());
    let model = match by_id {
        Some(id) => models.into_iter().find(|m| m.id == id),
        None if what.len() >= 8 && what.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let what = what.to_ascii_lowercase();
            models.into_iter().find(|m| m.sha256.starts_with(&what))
        }
        None => None,
    };
    Ok(model.map(|m| Named::Model(Box::new(m))))
}

/// Prints the whole training story (`None`) or one run's or model's.
pub(super) fn print(j: &Journal, named: Option<&Named>) -> Result<(), String> {
    let err = |e: crate::journal::JournalError| e.to_string();
    let events = match named {
        None => j.training_events(None).map_err(err)?,
        Some(Named::Run(r)) => {
            println!(
                "run {} on dataset {}: {}, {:.2} h of new audio, started {}{}",
                r.id,
                r.dataset,
                r.state.as_str(),
                r.seconds / 3600.0,
                rfc3339(r.started_at),
                r.ended_at
                    .map(|at| format!(", ended {}", rfc3339(at)))
                    .unwrap_or_default()
            );
            j.training_events(Some(&r.id)).map_err(err)?
        }
        Some(Named::Model(m)) => {
            println!(
                "model {} ({}): {}, sha256 {}",
                m.id,
                m.path.display(),
                m.state.as_str(),
                m.sha256
            );
            j.training_events(None)
                .map_err(err)?
                .into_iter()
                .filter(|e| e.model_id == Some(m.id))
                .collect()
        }
    };
    if events.is_empty() && named.is_none() {
        println!("no training run and no model change in the journal yet");
    }
    for e in &events {
        println!("  {}", line(e));
    }
    Ok(())
}

/// `TIME EVENT run ID: DETAIL` or `TIME EVENT model N (SHA12): DETAIL`.
fn line(e: &Event) -> String {
    let what = match (&e.run_id, e.model_id) {
        (Some(run), _) => format!("run {run}"),
        (None, Some(id)) => format!("model {id} ({})", &e.key[..e.key.len().min(12)]),
        (None, None) => String::new(),
    };
    format!(
        "{} {} {what}{}",
        rfc3339(e.at),
        e.event,
        e.detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    )
}
