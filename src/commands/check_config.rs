use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, VadChoice};

pub fn run(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            let choice = c.asr.vad_choice();
            let vad = match &choice {
                VadChoice::Model(p) => format!("VAD model {}", p.display()),
                VadChoice::Off => "VAD off".to_string(),
                VadChoice::NotFound(_) => "no VAD model found".to_string(),
            };
            println!(
                "{}: ok ({} watched folder{}, journal {}, model {}, {vad})",
                path.display(),
                c.watch.len(),
                if c.watch.len() == 1 { "" } else { "s" },
                c.journal.path.display(),
                c.asr.model.display()
            );
            if let VadChoice::NotFound(warning) = choice {
                eprintln!("{}: warning: {warning} (asr.vad = false)", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} problem{}",
                path.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}
