//! One module per subcommand; each returns the process exit code.
pub mod check_config;
pub mod dataset;
pub mod history;
mod history_training;
pub mod man;
pub mod model;
pub mod notify;
pub mod registry;
pub mod run;
pub mod score_diarization;
pub mod speakers;
pub mod transcribe;

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::journal::Journal;

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Transcribe(args) => transcribe::run(&args),
        Command::Model(cmd) => model::run(cmd),
        Command::CheckConfig { config } => check_config::run(&config),
        Command::Run { config } => run::run(&config),
        Command::Status { config } => run::status(&config),
        Command::Retry {
            config,
            ids,
            failed,
        } => run::retry(&config, &ids, failed),
        Command::Man { out } => man::run(&out),
        Command::ScoreDiarization {
            reference,
            hypothesis,
            collar,
        } => score_diarization::run(&reference, &hypothesis, collar),
        Command::Notify(cmd) => notify::run(cmd),
        Command::History { config, what } => history::run(&config, what.as_deref()),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::Speakers(cmd) => speakers::run(cmd),
    }
}

/// Loads the config, printing every problem in it; a config that does not load exits 2, a
/// usage error, as a bad flag does.
fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        ExitCode::from(2)
    })
}

/// The config and its journal, for the commands that read or change the journal.
fn open_journal(path: &Path) -> Result<(Config, Journal), ExitCode> {
    let config = load_config(path)?;
    match Journal::open(&config.journal.path) {
        Ok(journal) => Ok((config, journal)),
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Success, or the error printed and exit 1.
fn exit_code<E: Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            ExitCode::FAILURE
        }
    }
}
