//! `hotfolderd score-diarization --reference R.rttm --hypothesis H.rttm`: the diarization
//! error rate of each file and of all together (the benchmark's score).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::diarize::der::{score, Der, Span};
use crate::diarize::rttm;

pub fn run(reference: &[PathBuf], hypothesis: &[PathBuf], collar: f64) -> ExitCode {
    if !(collar.is_finite() && collar >= 0.0) {
        eprintln!("hotfolderd: --collar is seconds, 0 or more (md-eval's default is 0.25)");
        return ExitCode::from(2);
    }
    let read = |paths: &[PathBuf]| -> Result<BTreeMap<String, Vec<Span>>, String> {
        let mut by_file: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        for p in paths {
            for (file, span) in read_rttm(p)? {
                by_file.entry(file).or_default().push(span);
            }
        }
        Ok(by_file)
    };
    let (truth, found) = match (read(reference), read(hypothesis)) {
        (Ok(t), Ok(f)) => (t, f),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("hotfolderd: {e}");
            return ExitCode::from(2);
        }
    };
    println!("file                      DER   missed  false alarm  confusion  scored (s)");
    let mut total = Der::default();
    for (file, spans) in &truth {
        let d = score(
            spans,
            found.get(file).map_or(&[][..], Vec::as_slice),
            collar,
        );
        print_line(file, &d);
        total.scored_speech += d.scored_speech;
        total.missed += d.missed;
        total.false_alarm += d.false_alarm;
        total.confusion += d.confusion;
    }
    for file in found.keys().filter(|f| !truth.contains_key(*f)) {
        eprintln!("hotfolderd: {file} is in the hypothesis but not the reference: not scored");
    }
    print_line(&format!("TOTAL ({} files)", truth.len()), &total);
    ExitCode::SUCCESS
}

fn read_rttm(path: &Path) -> Result<Vec<(String, Span)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rttm::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn print_line(name: &str, d: &Der) {
    let pct = |x: f64| {
        if d.scored_speech > 0.0 {
            100.0 * x / d.scored_speech
        } else {
            0.0
        }
    };
    println!(
        "{name:<22} {:>6.2}%  {:>6.2}%  {:>10.2}%  {:>8.2}%  {:>10.1}",
        100.0 * d.rate(),
        pct(d.missed),
        pct(d.false_alarm),
        pct(d.confusion),
        d.scored_speech
    );
}
