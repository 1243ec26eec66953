//! `hotfolderd speakers enroll|list|remove`: the known voices diarized speakers are named
//! after, kept in the journal.

use std::process::ExitCode;

use crate::cli::SpeakersCommand;
use crate::config::Config;
use crate::diarize::enroll::{combine, file_print};
use crate::diarize::model::Wanted;
use crate::journal::{Journal, Voice};
use crate::pipeline::vad::Vad;

pub fn run(cmd: SpeakersCommand) -> ExitCode {
    let config = match &cmd {
        SpeakersCommand::Enroll { config, .. }
        | SpeakersCommand::List { config, .. }
        | SpeakersCommand::Remove { config, .. } => config.clone(),
    };
    let (config, mut journal) = match super::open_journal(&config) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    match cmd {
        SpeakersCommand::Enroll { name, files, .. } => {
            super::exit_code(enroll(&config, &mut journal, &name, &files))
        }
        SpeakersCommand::List { json, .. } => super::exit_code(list(&journal, json)),
        SpeakersCommand::Remove { name, .. } => match journal.remove_voice(&name) {
            Ok(true) => {
                println!("removed {name}");
                ExitCode::SUCCESS
            }
            Ok(false) => {
                eprintln!("hotfolderd: no voice named {name:?} is enrolled (see `hotfolderd speakers list`)");
                ExitCode::FAILURE
            }
            Err(e) => super::exit_code(Err(e)),
        },
    }
}

/// What is wrong with a name for a voice: it is shown in every format, inside `[…]` and
/// vtt's `<v …>`, and `S1`, `S2`, … are for speakers no known voice matched.
pub fn name_problem(name: &str) -> Option<String> {
    let reserved =
        name.len() > 1 && name.starts_with('S') && name[1..].bytes().all(|b| b.is_ascii_digit());
    if name.trim().is_empty() || name.chars().count() > 64 {
        Some("a name has 1 to 64 characters".into())
    } else if name.chars().any(|c| c.is_control() || "<>[]".contains(c)) {
        Some("a name has no control characters and none of < > [ ]".into())
    } else if reserved {
        Some(format!(
            "{name} is how unmatched speakers are numbered (S1, S2, …): choose a name"
        ))
    } else if name != name.trim() {
        Some("a name does not start or end with a space".into())
    } else {
        None
    }
}

fn enroll(
    config: &Config,
    journal: &mut Journal,
    name: &str,
    files: &[std::path::PathBuf],
) -> Result<(), String> {
    if let Some(why) = name_problem(name) {
        return Err(format!("{name:?}: {why}"));
    }
    let asr = config.resolve_profile(None, None)?;
    let wanted = Wanted {
        model: config.asr.decoding.speaker_model.clone(),
        ..Wanted::default()
    };
    let d = wanted.resolve(&config.asr.model)?;
    let model = crate::diarize::model::load(&d.model).map_err(|e| e.to_string())?;
    let model_sha256 = crate::diarize::model::sha256(&d.model)
        .map_err(|e| format!("cannot read {}: {e}", d.model.display()))?;
    let mut vad = match &asr.opts.vad_model {
        Some(p) => Some(Vad::load(p, &asr.opts.vad)?),
        None => None,
    };
    let mut prints = Vec::with_capacity(files.len());
    for f in files {
        let p = file_print(&model, f, vad.as_mut()).map_err(|e| e.to_string())?;
        println!("{}: {:.1} s of speech", f.display(), p.seconds);
        prints.push(p);
    }
    let seconds: f64 = prints.iter().map(|p| p.seconds).sum();
    journal
        .enroll_voice(&Voice {
            name: name.to_string(),
            print: combine(&prints),
            model_sha256,
            files: files.len() as i64,
            seconds,
            enrolled_at: 0,
        })
        .map_err(|e| e.to_string())?;
    println!(
        "enrolled {name} from {} file(s), {seconds:.1} s of speech",
        files.len()
    );
    Ok(())
}

fn list(journal: &Journal, json: bool) -> Result<(), String> {
    let voices = journal.voices().map_err(|e| e.to_string())?;
    if json {
        let rows: Vec<serde_json::Value> = voices
            .iter()
            .map(|v| {
                serde_json::json!({
                    "name": v.name,
                    "files": v.files,
                    "seconds": (v.seconds * 10.0).round() / 10.0,
                    "model_sha256": v.model_sha256,
                    "enrolled_at": crate::notify::document::rfc3339(v.enrolled_at),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    if voices.is_empty() {
        println!("no voices enrolled (hotfolderd speakers enroll NAME FILE...)");
        return Ok(());
    }
    println!("{:<24} {:>5} {:>9}  enrolled", "name", "files", "speech");
    for v in &voices {
        println!(
            "{:<24} {:>5} {:>8.1}s  {}",
            v.name,
            v.files,
            v.seconds,
            crate::notify::document::rfc3339(v.enrolled_at)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_show_in_every_format_and_leave_numbers_to_strangers() {
        assert_eq!(name_problem("Ada Lovelace"), None);
        assert_eq!(name_problem("Søren"), None);
        for bad in ["", " ", "S1", "S42", "a<b", "[x]", "tab\there", " ada"] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(name_problem("Sam"), None);
        assert_eq!(name_problem("S"), None);
    }
}
