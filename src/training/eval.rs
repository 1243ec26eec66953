//! Scoring a run: the serving model and the run's candidate transcribe the held-out pieces
//! (`eval.jsonl`) with the daemon's own decoder, the whisper.cpp path that serves, and each
//! gets a WER against the pieces' labels. The candidate is what the trainer left in
//! `output/final` (a Hugging Face Whisper folder, or a PEFT LoRA adapter over the exported
//! serving model), converted to ggml in the run's folder with the serving model's weight
//! type, so the model that would be promoted is the model that was scored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::wer::Tally;
use crate::dataset::manifest::{self, Label, Line};
use crate::dataset::split;
use crate::model::{import_hf, ModelError, WeightType};
use crate::pipeline::cancel::Cancel;
use crate::pipeline::decode::AudioDecoder16k;
use crate::pipeline::transcribe::{
    DecodeOptions, TranscribeError, Transcriber, WhisperTranscriber,
};

/// The candidate, as ggml, in the run's folder.
pub const CANDIDATE_FILE_NAME: &str = "candidate.bin";
/// Where the trainer leaves the model to score (the recipe's final save).
pub const CANDIDATE_DIR: &str = "output/final";

/// The model the daemon serves: runs start from it and are scored against it.
pub struct Serving {
    pub transcriber: Arc<dyn Transcriber>,
    pub opts: DecodeOptions,
    pub model: PathBuf,
    pub sha256: String,
    /// Where registered models are kept (beside the journal).
    pub models_dir: PathBuf,
}

/// One model's score on the held-out pieces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub model_sha256: String,
    pub wer: f64,
    pub errors: usize,
    pub reference_words: usize,
}

/// `run.json`'s `eval`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The held-out pieces scored, and their hours.
    pub utterances: usize,
    pub hours: f64,
    /// Held-out pieces left out because the serving model labelled them itself (or no one
    /// knows who did): its own words cannot score it.
    pub self_labelled: usize,
    pub baseline: Option<Scored>,
    pub candidate: Option<Scored>,
    /// The candidate as ggml, relative to the run's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_model: Option<String>,
    /// Why a score is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("no held-out inputs in this run (eval_fraction is 0, or none fell on the held-out side yet): nothing to score")]
    NoHeldOut,
    #[error("none of the {0} held-out pieces is labelled independently of the serving model, whose own transcripts cannot score it: correct some held-out inputs by hand (corrections/) or label the dataset with a teacher_model")]
    OnlySelfLabelled(usize),
    #[error("cannot read the held-out pieces {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the trainer left no model in {}: the candidate must be a Hugging Face folder or a LoRA adapter there", .0.display())]
    NoCandidate(PathBuf),
    #[error("cannot convert the candidate to ggml: {0}")]
    Convert(#[source] ModelError),
    #[error("cannot load the candidate {}: {message}", .path.display())]
    Load { path: PathBuf, message: String },
    #[error("cannot transcribe held-out piece {}: {message}", .path.display())]
    Transcribe { path: PathBuf, message: String },
    #[error("evaluation {0}")]
    Stopped(crate::pipeline::cancel::Stopped),
}

/// Scores the serving model and the candidate of the run in `dir` (a finished trainer's
/// folder). Never fails as a whole: what could not be scored says why in `error`.
pub fn evaluate(serving: &Serving, dir: &Path, cancel: &Cancel) -> Evaluation {
    let held_out = dir.join(split::EVAL_FILE_NAME);
    let all = match manifest::read(&held_out) {
        Ok(c) => c.lines,
        Err(source) => {
            return failed(
                0,
                0.0,
                0,
                EvalError::Read {
                    path: held_out,
                    source,
                },
            )
        }
    };
    if all.is_empty() {
        return failed(0, 0.0, 0, EvalError::NoHeldOut);
    }
    let total = all.len();
    let lines: Vec<Line> = all
        .into_iter()
        .filter(|l| independent(l, &serving.sha256))
        .collect();
    let self_labelled = total - lines.len();
    if lines.is_empty() {
        return failed(0, 0.0, self_labelled, EvalError::OnlySelfLabelled(total));
    }
    let hours = lines.iter().map(|l| l.duration).sum::<f64>() / 3600.0;
    let n = lines.len();
    let opts = DecodeOptions {
        cancel: cancel.clone(),
        ..serving.opts.clone()
    };
    let baseline = match score(&*serving.transcriber, &serving.sha256, &lines, &opts) {
        Ok(s) => s,
        Err(e) => return failed(n, hours, self_labelled, e),
    };
    let mut eval = Evaluation {
        utterances: n,
        hours,
        self_labelled,
        baseline: Some(baseline),
        candidate: None,
        candidate_model: None,
        error: None,
    };
    match candidate(serving, dir, &lines, &opts) {
        Ok(scored) => {
            eval.candidate = Some(scored);
            eval.candidate_model = Some(CANDIDATE_FILE_NAME.into());
        }
        Err(e) => eval.error = Some(e.to_string()),
    }
    eval
}

/// Whether a line's text can score the model `serving`: a person's, or another model's (a
/// teacher's, or an earlier serving model's).
fn independent(l: &Line, serving: &str) -> bool {
    match l.label {
        Some(Label::Human) => true,
        Some(Label::Machine) => l.model_sha256.as_deref().is_some_and(|m| m != serving),
        None => false,
    }
}

fn failed(utterances: usize, hours: f64, self_labelled: usize, e: EvalError) -> Evaluation {
    Evaluation {
        utterances,
        hours,
        self_labelled,
        baseline: None,
        candidate: None,
        candidate_model: None,
        error: Some(e.to_string()),
    }
}

/// Converts the trainer's model to ggml beside the record and scores it.
fn candidate(
    serving: &Serving,
    dir: &Path,
    lines: &[Line],
    opts: &DecodeOptions,
) -> Result<Scored, EvalError> {
    let source = dir.join(CANDIDATE_DIR);
    if !source.is_dir() {
        return Err(EvalError::NoCandidate(source));
    }
    let out = dir.join(CANDIDATE_FILE_NAME);
    let wtype = WeightType::of_model(&serving.model).unwrap_or(WeightType::F16);
    // Between the long steps, a stop is heeded (the decoder heeds it within them).
    let heed = || {
        opts.cancel
            .stopped()
            .map_or(Ok(()), |why| Err(EvalError::Stopped(why)))
    };
    heed()?;
    import_hf(&source, &out, wtype, None).map_err(EvalError::Convert)?;
    heed()?;
    let sha256 = crate::hash::sha256_file(&out).map_err(|source| EvalError::Read {
        path: out.clone(),
        source,
    })?;
    let model = WhisperTranscriber::load(&out).map_err(|e| EvalError::Load {
        path: out.clone(),
        message: e.to_string(),
    })?;
    score(&model, &sha256, lines, opts)
}

/// Transcribes every piece with `model` and counts its word errors against the labels.
fn score(
    model: &dyn Transcriber,
    sha256: &str,
    lines: &[Line],
    opts: &DecodeOptions,
) -> Result<Scored, EvalError> {
    let mut tally = Tally::default();
    for l in lines {
        let path = Path::new(&l.audio_filepath);
        let failed = |message: String| EvalError::Transcribe {
            path: path.to_path_buf(),
            message,
        };
        let mut audio = AudioDecoder16k::open_path(path).map_err(|e| failed(e.to_string()))?;
        let heard = model.transcribe(&mut audio, opts).map_err(|e| match e {
            TranscribeError::Stopped(why) => EvalError::Stopped(why),
            e => failed(e.to_string()),
        })?;
        let text: Vec<&str> = heard.segments.iter().map(|s| s.text.trim()).collect();
        tally.add(&l.text, &text.join(" "));
    }
    Ok(Scored {
        model_sha256: sha256.to_string(),
        wer: tally.wer(),
        errors: tally.errors,
        reference_words: tally.reference_words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_labels_the_serving_model_did_not_write_can_score_it() {
        let line = |label, model: Option<&str>| Line {
            label,
            model_sha256: model.map(str::to_string),
            ..Line::default()
        };
        assert!(independent(&line(Some(Label::Human), None), "aa"));
        assert!(independent(
            &line(Some(Label::Machine), Some("teacher")),
            "aa"
        ));
        assert!(!independent(&line(Some(Label::Machine), Some("aa")), "aa"));
        assert!(!independent(&line(Some(Label::Machine), None), "aa"));
        assert!(!independent(&line(None, None), "aa"));
    }
}
