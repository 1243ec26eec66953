//! After a run is scored: its candidate goes into the model registry with its lineage
//! (parent model, run, dataset, training manifest, both WERs), its file copied beside the
//! journal (`models/<sha256>.bin`, so deleting runs never deletes a model that serves), and
//! `promote` decides whether it serves from now on. The switch itself is one journal
//! transaction; the daemon's model watcher loads the new model and swaps it in.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::eval::{Evaluation, CANDIDATE_FILE_NAME};
use crate::config::Promote;
use crate::journal::{Journal, Lineage};
use crate::sinks::local::AtomicFile;

/// `run.json`'s `promotion`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Promotion {
    pub promoted: bool,
    pub reason: String,
    /// The candidate's id in the registry (`hotfolderd model list`), if it was registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
}

/// Whether a candidate scored as `eval` is promoted under `policy`: `Ok` with the reason,
/// or `Err` with why not.
pub fn decide(policy: Promote, min_wer_gain: f64, eval: &Evaluation) -> Result<String, String> {
    let Some(candidate) = &eval.candidate else {
        return Err(format!(
            "the candidate was not scored: {}",
            eval.error.as_deref().unwrap_or("no score")
        ));
    };
    match policy {
        Promote::Never => Err("promote = \"never\"".into()),
        Promote::Always => Ok(format!(
            "promote = \"always\" (held-out WER {:.4})",
            candidate.wer
        )),
        Promote::IfBetter => {
            let Some(baseline) = &eval.baseline else {
                return Err("the serving model was not scored".into());
            };
            let gain = baseline.wer - candidate.wer;
            let said = format!(
                "held-out WER {:.4} against the serving model's {:.4} ({} utterances)",
                candidate.wer, baseline.wer, eval.utterances
            );
            // Both rates divide by the same words: a gain of exactly min_wer_gain counts,
            // whatever the floating-point rounding of the two divisions.
            if gain > 0.0 && gain + 1e-9 >= min_wer_gain {
                Ok(said)
            } else {
                Err(format!("{said}: not better by min_wer_gain {min_wer_gain}"))
            }
        }
    }
}

/// What a run gives the registry besides its candidate.
pub struct RunFacts<'a> {
    pub run_id: &'a str,
    pub dataset: &'a str,
    pub manifest_sha256: &'a str,
    pub parent_sha256: &'a str,
}

/// Registers the candidate of the scored run in `dir` and promotes it if `policy` says so.
pub fn settle(
    journal: &Mutex<Journal>,
    models_dir: &Path,
    dir: &Path,
    facts: &RunFacts<'_>,
    eval: &Evaluation,
    policy: Promote,
    min_wer_gain: f64,
) -> Promotion {
    let verdict = decide(policy, min_wer_gain, eval);
    let Some(candidate) = &eval.candidate else {
        return Promotion {
            promoted: false,
            reason: verdict.err().unwrap_or_default(),
            model_id: None,
        };
    };
    let kept = match keep(dir, models_dir, &candidate.model_sha256) {
        Ok(path) => path,
        Err(e) => {
            return Promotion {
                promoted: false,
                reason: format!("cannot keep the candidate in {}: {e}", models_dir.display()),
                model_id: None,
            }
        }
    };
    let lineage = Lineage {
        parent_sha256: Some(facts.parent_sha256.to_string()),
        run_id: Some(facts.run_id.to_string()),
        dataset: Some(facts.dataset.to_string()),
        manifest_sha256: Some(facts.manifest_sha256.to_string()),
        wer: Some(candidate.wer),
        baseline_wer: eval.baseline.as_ref().map(|b| b.wer),
    };
    // Registered and (if so decided) promoted in one transaction: a crash cannot register
    // it and lose the decision.
    let over = verdict.is_ok().then_some(facts.parent_sha256);
    let mut j = journal.lock().unwrap_or_else(|p| p.into_inner());
    let (id, switched) = match j.model_add(
        &candidate.model_sha256,
        &kept.display().to_string(),
        &lineage,
        over,
    ) {
        Ok(added) => added,
        Err(e) => {
            return Promotion {
                promoted: false,
                reason: format!("cannot register the candidate: {e}"),
                model_id: None,
            }
        }
    };
    let (promoted, reason) = match (verdict, switched) {
        (Ok(why), Ok(())) => (true, why),
        (Ok(why), Err(e)) => (false, format!("{why}, but it could not be promoted: {e}")),
        (Err(why), _) => (false, why),
    };
    Promotion {
        promoted,
        reason,
        model_id: Some(id),
    }
}

/// Puts the run's candidate at `models_dir/<sha256>.bin`, with its tokenizer beside it as
/// `tokenizer-<sha256>.json` (where `model export-hf` looks, so a run can start from it),
/// unless it is there already. Returns the model's path.
fn keep(run: &Path, models_dir: &Path, sha256: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(models_dir)?;
    let tokenizer = run.join(super::eval::CANDIDATE_DIR).join("tokenizer.json");
    if tokenizer.is_file() {
        place(
            &tokenizer,
            &models_dir.join(format!("tokenizer-{sha256}.json")),
        )?;
    }
    let to = models_dir.join(format!("{sha256}.bin"));
    place(&run.join(CANDIDATE_FILE_NAME), &to)?;
    // The names themselves must survive a power cut before the registry points at them.
    std::fs::File::open(models_dir)?.sync_all()?;
    Ok(to)
}

/// `from` at `to` (a hard link where it can, else a copy written whole before it appears),
/// unless `to` is there already.
fn place(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.is_file() || std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let copy = AtomicFile::create(to).map_err(|e| e.source)?;
    let mut into = copy.as_file();
    std::io::copy(&mut std::fs::File::open(from)?, &mut into)?;
    copy.commit().map_err(|e| e.source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::eval::Scored;

    fn eval(baseline: f64, candidate: Option<f64>) -> Evaluation {
        let scored = |wer: f64, sha: &str| Scored {
            model_sha256: sha.into(),
            wer,
            errors: 0,
            reference_words: 100,
        };
        Evaluation {
            utterances: 4,
            hours: 0.01,
            self_labelled: 0,
            baseline: Some(scored(baseline, "aa")),
            candidate: candidate.map(|w| scored(w, "bb")),
            candidate_model: candidate.map(|_| CANDIDATE_FILE_NAME.into()),
            error: candidate.is_none().then(|| "no model".into()),
        }
    }

    #[test]
    fn if_better_needs_a_gain_and_never_and_always_mean_what_they_say() {
        use Promote::*;
        assert!(decide(IfBetter, 0.0, &eval(0.20, Some(0.15))).is_ok());
        assert!(decide(IfBetter, 0.0, &eval(0.20, Some(0.20))).is_err());
        assert!(decide(IfBetter, 0.0, &eval(0.20, Some(0.25))).is_err());
        assert!(decide(IfBetter, 0.1, &eval(0.20, Some(0.15))).is_err());
        assert!(decide(IfBetter, 0.05, &eval(0.20, Some(0.15))).is_ok());
        assert!(
            decide(IfBetter, 0.1, &eval(0.30, Some(0.20))).is_ok(),
            "exactly the gain"
        );
        assert!(decide(Always, 0.0, &eval(0.20, Some(0.90))).is_ok());
        assert!(decide(Never, 0.0, &eval(0.20, Some(0.0))).is_err());
        let unscored = decide(Always, 0.0, &eval(0.20, None)).unwrap_err();
        assert!(unscored.contains("no model"), "{unscored}");
    }

    #[test]
    fn a_candidate_is_registered_with_its_lineage_and_promoted_by_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Mutex::new(Journal::open(&dir.path().join("j.sqlite")).unwrap());
        journal
            .lock()
            .unwrap()
            .models_start("aa", "/m/tiny.bin")
            .unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(CANDIDATE_FILE_NAME), b"weights").unwrap();
        let facts = RunFacts {
            run_id: "r1",
            dataset: "calls",
            manifest_sha256: "mm",
            parent_sha256: "aa",
        };
        let models = dir.path().join("models");
        let worse = settle(
            &journal,
            &models,
            &run,
            &facts,
            &eval(0.2, Some(0.3)),
            Promote::IfBetter,
            0.0,
        );
        assert!(!worse.promoted && worse.model_id.is_some(), "{worse:?}");
        assert_eq!(std::fs::read(models.join("bb.bin")).unwrap(), b"weights");
        let j = journal.lock().unwrap();
        assert_eq!(j.serving_model().unwrap().unwrap().sha256, "aa");
        let row = &j.models().unwrap()[1];
        assert_eq!(
            (
                row.lineage.run_id.as_deref(),
                row.lineage.wer,
                row.lineage.baseline_wer
            ),
            (Some("r1"), Some(0.3), Some(0.2))
        );
        drop(j);
        let better = settle(
            &journal,
            &models,
            &run,
            &facts,
            &eval(0.2, Some(0.1)),
            Promote::IfBetter,
            0.0,
        );
        assert!(better.promoted, "{better:?}");
        assert_eq!(better.model_id, worse.model_id);
        let serving = journal.lock().unwrap().serving_model().unwrap().unwrap();
        assert_eq!(serving.sha256, "bb");
        assert_eq!(serving.path, models.join("bb.bin"));
    }
}
