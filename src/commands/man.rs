//! `hotfolderd man --out DIR`: manual pages generated from the CLI definition, so they
//! cannot drift from `--help` (the Debian package ships them, `scripts/package.sh`).

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

pub fn run(out: &Path) -> ExitCode {
    let written = std::fs::create_dir_all(out)
        .and_then(|()| clap_mangen::generate_to(crate::cli::Cli::command(), out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "hotfolderd man: cannot write pages to {}: {e}",
                out.display()
            );
            ExitCode::FAILURE
        }
    }
}
