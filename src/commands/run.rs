use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::journal::Journal;

fn load(path: &Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            None
        }
    }
}

pub fn run(path: &Path) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hotfolderd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn status(path: &Path) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::from(2);
    };
    let journal = match Journal::open(&config.journal.path) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = journal.counts().and_then(|counts| {
        for (state, n) in counts {
            println!("{:<12} {n}", state.as_str());
        }
        let failures = journal.recent_failures(10)?;
        if !failures.is_empty() {
            println!("\nlatest failures:");
            for (id, source, key, reason) in failures {
                println!("  #{id} {source} {key}: {reason}");
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            ExitCode::FAILURE
        }
    }
}
