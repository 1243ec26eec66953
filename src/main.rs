use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hotfolderd::cli::Cli::parse();
    hotfolderd::telemetry::init(cli.verbose);
    hotfolderd::commands::run(cli)
}
