//! One module per subcommand; each returns the process exit code.
pub mod check_config;
pub mod history;
pub mod man;
pub mod model;
pub mod notify;
pub mod run;
pub mod transcribe;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

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
        Command::Notify(cmd) => notify::run(cmd),
        Command::History { config, what } => history::run(&config, &what),
    }
}
