use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hotfolderd::cli::Cli::parse();
    // The daemon reports what it does at info level; commands stay quiet unless asked.
    let daemon = matches!(cli.command, hotfolderd::cli::Command::Run { .. });
    hotfolderd::telemetry::init(cli.verbose || daemon);
    hotfolderd::commands::run(cli)
}
