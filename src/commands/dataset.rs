//! `hotfolderd dataset correct INPUT FILE`: checks a person's transcript against the input's
//! pieces in each dataset that holds it, then puts it in the dataset's `corrections/`
//! folder as `<sha256>.EXT`. The daemon is the one writer of manifests: it applies the file
//! (now if it runs, else at its next start) and journals it.

use std::path::Path;
use std::process::ExitCode;

use sha2::{Digest, Sha256};

use crate::cli::DatasetCommand;
use crate::config::Config;
use crate::dataset::correction::{self, Correction};
use crate::dataset::{manifest, Dataset};
use crate::journal::Journal;
use crate::sinks::local::write_atomic;

pub fn run(cmd: DatasetCommand) -> ExitCode {
    match cmd {
        DatasetCommand::Correct {
            config,
            input,
            file,
            dataset,
        } => {
            let (config, journal) = match super::open_journal(&config) {
                Ok(opened) => opened,
                Err(code) => return code,
            };
            super::exit_code(correct(
                &config,
                &journal,
                &input,
                &file,
                dataset.as_deref(),
            ))
        }
    }
}

fn correct(
    config: &Config,
    journal: &Journal,
    input: &str,
    file: &Path,
    only: Option<&str>,
) -> Result<(), String> {
    let sha256 = content_of(config, journal, input)?;
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let meta =
        std::fs::metadata(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if meta.len() > correction::MAX_BYTES {
        return Err(format!(
            "{}: {}",
            file.display(),
            correction::CorrectionError::TooBig(meta.len())
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let parsed = correction::parse(&ext, &bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let work_dir = crate::dataset::feed::work_dir(&config.journal.path);
    let datasets: Vec<Dataset> = config
        .dataset
        .iter()
        .filter(|c| only.is_none_or(|name| c.name.get_ref() == name))
        .map(|c| Dataset::from_config(c, &work_dir))
        .collect();
    if let Some(name) = only.filter(|_| datasets.is_empty()) {
        return Err(format!(
            "no [[dataset]] named {name:?} in the configuration"
        ));
    }
    let err = |e: crate::journal::JournalError| e.to_string();
    // Every dataset is checked before any is written, so a misfit leaves nothing behind.
    let mut targets = Vec::new();
    for d in &datasets {
        let holds = journal.dataset_holds(&d.name, &sha256).map_err(err)?;
        if !holds && only.is_none() {
            continue;
        }
        if holds {
            check_fits(d, &sha256, &parsed.correction)
                .map_err(|e| format!("{}: dataset {}: {e}", file.display(), d.name))?;
        }
        targets.push((d, holds));
    }
    if targets.is_empty() {
        return Err(format!(
            "{input} (sha256 {sha256}) is in no dataset yet: give --dataset NAME to leave the correction waiting for it"
        ));
    }
    for (d, holds) in targets {
        let to = d.corrections_dir().join(format!("{sha256}.{ext}"));
        write_atomic(&to, &bytes).map_err(|e| e.to_string())?;
        println!(
            "dataset {}: correction for {input} (sha256 {sha256}, file sha256 {}) is {}{}",
            d.name,
            hex::encode(Sha256::digest(&bytes)),
            to.display(),
            if holds {
                "; the daemon applies it (now if it runs, else when it starts): see corrections/done/ or corrections/failed/, and `hotfolderd history`"
            } else {
                "; it waits there until the input reaches this dataset"
            }
        );
    }
    Ok(())
}

/// The correction lays onto the input's pieces (the daemon would reject it otherwise).
fn check_fits(d: &Dataset, sha256: &str, c: &Correction) -> Result<(), String> {
    let contents = manifest::read(&d.manifest())
        .map_err(|e| format!("cannot read {}: {e}", d.manifest().display()))?;
    let lines: Vec<_> = contents
        .lines
        .into_iter()
        .filter(|l| l.sha256 == sha256)
        .collect();
    if lines.is_empty() {
        return Err(
            "the dataset kept no audio of this input, so there is nothing to relabel".into(),
        );
    }
    correction::relabel(&lines, c)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The content (sha256) `input` names: a sha256, an input the journal knows (its newest
/// version), or a file anywhere, hashed.
fn content_of(config: &Config, journal: &Journal, input: &str) -> Result<String, String> {
    if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(input.to_ascii_lowercase());
    }
    let err = |e: crate::journal::JournalError| e.to_string();
    let ids = super::history::find(journal, config, input)?;
    if let Some(&id) = ids.iter().max() {
        return journal
            .get(id)
            .map_err(err)?
            .and_then(|i| i.sha256)
            .ok_or_else(|| format!("input #{id} ({input}) has not been read yet: correct it once it is transcribed"));
    }
    if Path::new(input).is_file() {
        return crate::hash::sha256_file(Path::new(input))
            .map_err(|e| format!("cannot read {input}: {e}"));
    }
    Err(format!(
        "nothing in the journal for {input:?} (give a file path, an S3 key or s3:// URI, an input id, or a sha256)"
    ))
}
