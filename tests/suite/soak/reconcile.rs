//! The reckoning: every dropped input has exactly one journal row that ended as it should
//! (speech transcribed with one complete, matching set of outputs; garbage quarantined with
//! a reason), nothing else was produced, no temporary file or queue message is left, and
//! the audit log is the journal's own history.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use hotfolderd::journal::{Input, Journal, State};
use hotfolderd::sinks::s3::INPUT_SHA_META;

use super::antagonist::Faults;
use super::{Dropped, Origin, Soak};
use crate::common::moto::World;
use crate::common::{audit_and_journal_events, files_under};

const FORMATS: [&str; 4] = ["json", "srt", "vtt", "txt"];

struct Row {
    input: Input,
    /// (event, detail) in order.
    history: Vec<(String, Option<String>)>,
}

/// Every input in the journal; its history too when `history` (settling needs only states).
fn journal_rows(path: &Path, history: bool) -> Vec<Row> {
    if !path.exists() {
        return Vec::new();
    }
    let j = Journal::open(path).unwrap();
    State::ALL
        .iter()
        .flat_map(|s| j.in_state(*s).unwrap())
        .map(|id| Row {
            input: j.get(id).unwrap().unwrap(),
            history: if history {
                j.history(id)
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.1, e.2))
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect()
}

fn origin_of(input: &Input) -> Origin {
    if hotfolderd::daemon::SourceId::root_of(&input.source).is_some() {
        Origin::Folder
    } else {
        Origin::Bucket
    }
}

fn key_of(d: &Dropped) -> String {
    match d.origin {
        Origin::Folder => d.name.clone(),
        Origin::Bucket => format!("in/{}", d.name),
    }
}

fn stem(name: &str) -> &str {
    name.strip_suffix(".wav").unwrap_or(name)
}

/// Files straight in the inbox (not in done/ or failed/).
fn inbox_leftovers(soak: &Soak) -> Vec<String> {
    std::fs::read_dir(&soak.inbox)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every dropped input is final, the inbox is empty and the queue drained.
/// The backlog a long soak leaves depends on the machine's speed, so the wait is bounded by
/// progress: it gives up when no input has become final for `stall`.
pub fn settle(soak: &Soak, w: &World, stall: Duration) -> bool {
    let mut deadline = Instant::now() + stall;
    let mut finals = 0;
    let journal = soak.dir.join("state/journal.sqlite");
    loop {
        soak.check_alive();
        let rows = journal_rows(&journal, false);
        let seen: BTreeMap<(bool, String), bool> = rows
            .iter()
            .map(|r| {
                (
                    (origin_of(&r.input) == Origin::Folder, r.input.key.clone()),
                    r.input.state.is_final(),
                )
            })
            .collect();
        let ledger = soak.ledger.lock().unwrap().clone();
        let all_final = ledger.iter().all(|d| {
            seen.get(&(d.origin == Origin::Folder, key_of(d)))
                .copied()
                .unwrap_or(false)
        }) && seen.values().all(|f| *f);
        if all_final && inbox_leftovers(soak).is_empty() && w.messages_left() == (0, 0) {
            return true;
        }
        let now_final = seen.values().filter(|f| **f).count();
        if now_final > finals {
            finals = now_final;
            deadline = Instant::now() + stall;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[derive(Default)]
pub struct Report {
    pub header: String,
    /// (row label, folder, bucket)
    pub counts: Vec<(String, usize, usize)>,
    pub faults: Faults,
    pub reasons: BTreeMap<String, usize>,
    pub problems: Vec<String>,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    folder: usize,
    bucket: usize,
}

impl Tally {
    fn add(&mut self, o: Origin) {
        match o {
            Origin::Folder => self.folder += 1,
            Origin::Bucket => self.bucket += 1,
        }
    }
}

pub fn reconcile(
    soak: &Soak,
    w: &World,
    faults: Faults,
    secs: u64,
    seed: u64,
    settled: bool,
    exit: Option<std::process::ExitStatus>,
) -> Report {
    let ledger = soak.ledger.lock().unwrap().clone();
    let rows = journal_rows(&soak.dir.join("state/journal.sqlite"), true);
    let mut by_key: BTreeMap<(bool, String), Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_key
            .entry((origin_of(&r.input) == Origin::Folder, r.input.key.clone()))
            .or_default()
            .push(r);
    }
    let bucket_outputs = w.output_keys();
    let mut problems = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut t: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut expected_folder: BTreeSet<std::path::PathBuf> = BTreeSet::new();
    let mut expected_bucket: BTreeSet<String> = BTreeSet::new();

    for d in &ledger {
        t.entry("inputs dropped").or_default().add(d.origin);
        t.entry(match d.how {
            "speech" => "  speech",
            "renamed" => "  speech, renamed from .part",
            "slow writer" => "  speech, written slowly",
            "duplicate" => "  speech, a copy of earlier content",
            "text" => "  text named .wav",
            _ => "  random bytes named .wav",
        })
        .or_default()
        .add(d.origin);
        let key = key_of(d);
        let found = by_key
            .get(&(d.origin == Origin::Folder, key.clone()))
            .cloned()
            .unwrap_or_default();
        let row = match found.as_slice() {
            [] => {
                problems.push(format!("lost: {key} ({}) is not in the journal", d.how));
                t.entry("lost").or_default().add(d.origin);
                continue;
            }
            [one] => *one,
            [first, ..] => {
                problems.push(format!("duplicate: {key} has {} journal rows", found.len()));
                t.entry("duplicated").or_default().add(d.origin);
                *first
            }
        };
        let dones = row.history.iter().filter(|e| e.0 == "done").count();
        if dones > 1 {
            problems.push(format!("duplicate: {key} finished {dones} times"));
            t.entry("duplicated").or_default().add(d.origin);
        }
        let runs = row.history.iter().filter(|e| e.0 == "running").count();
        if runs > 1 {
            t.entry("ran again after an interruption (one result)")
                .or_default()
                .add(d.origin);
        }
        let state = row.input.state;
        if d.good {
            if state != State::Done {
                problems.push(format!(
                    "lost: speech {key} ({}) ended {}: {}",
                    d.how,
                    state.as_str(),
                    row.input.last_error.clone().unwrap_or_default()
                ));
                t.entry("lost").or_default().add(d.origin);
                continue;
            }
            t.entry("transcribed, one full set of outputs")
                .or_default()
                .add(d.origin);
            let complete = match d.origin {
                Origin::Folder => check_folder_outputs(soak, d, &mut expected_folder),
                Origin::Bucket => check_bucket_outputs(w, d, &mut expected_bucket),
            };
            match complete {
                Ok(true) => t.entry("  of them deduplicated").or_default().add(d.origin),
                Ok(false) => {}
                Err(e) => {
                    problems.push(format!("partial: {key}: {e}"));
                    t.entry("partial or mismatched outputs")
                        .or_default()
                        .add(d.origin);
                }
            }
        } else {
            let reason = row.input.last_error.clone().unwrap_or_default();
            if !matches!(state, State::Quarantined | State::Failed) || reason.trim().is_empty() {
                problems.push(format!(
                    "garbage {key} ended {} with reason {reason:?}",
                    state.as_str()
                ));
                continue;
            }
            t.entry("quarantined or failed, with a reason")
                .or_default()
                .add(d.origin);
            let reason = reason.replace(&*soak.dir.to_string_lossy(), "");
            *reasons.entry(reason_class(&reason, &key)).or_default() += 1;
            if d.origin == Origin::Folder && !soak.inbox.join("failed").join(&d.name).is_file() {
                problems.push(format!("{key} is not in failed/"));
            }
        }
    }

    let known: BTreeSet<(bool, String)> = ledger
        .iter()
        .map(|d| (d.origin == Origin::Folder, key_of(d)))
        .collect();
    for r in &rows {
        let k = (origin_of(&r.input) == Origin::Folder, r.input.key.clone());
        if !known.contains(&k) {
            problems.push(format!(
                "unexpected input in the journal: {:?}",
                r.input.key
            ));
        }
    }
    for f in files_under(&soak.out) {
        if f.to_string_lossy().contains(".hotfolderd-") {
            problems.push(format!("orphaned temporary file: {}", f.display()));
            t.entry("orphaned temporary files").or_default().folder += 1;
        } else if !expected_folder.contains(&f) {
            problems.push(format!("output of no input: {}", f.display()));
            t.entry("duplicated").or_default().folder += 1;
        }
    }
    for k in bucket_outputs.difference(&expected_bucket) {
        problems.push(format!("output object of no input: {k}"));
        t.entry("duplicated").or_default().bucket += 1;
    }
    for f in files_under(&soak.inbox) {
        if f.to_string_lossy().contains(".hotfolderd-") {
            problems.push(format!("orphaned temporary file: {}", f.display()));
        }
    }
    for name in inbox_leftovers(soak) {
        problems.push(format!("still in the inbox: {name}"));
    }
    let left = w.messages_left();
    if left != (0, 0) {
        problems.push(format!("queue not empty: {left:?} (visible, in flight)"));
    }
    let audit_agrees = audit_agrees(&soak.dir);
    if let Err(e) = &audit_agrees {
        problems.push(e.clone());
    }
    if !settled {
        problems.push("not every input was final when the settling time ran out".into());
    }
    let unexpected = soak
        .unexpected_exits
        .load(std::sync::atomic::Ordering::SeqCst);
    if unexpected > 0 {
        problems.push(format!("the daemon exited on its own {unexpected} times"));
    }
    match exit {
        Some(s) if s.success() => {}
        other => problems.push(format!("the final SIGTERM ended the daemon with {other:?}")),
    }

    let order = [
        "inputs dropped",
        "  speech",
        "  speech, renamed from .part",
        "  speech, written slowly",
        "  speech, a copy of earlier content",
        "  text named .wav",
        "  random bytes named .wav",
        "transcribed, one full set of outputs",
        "  of them deduplicated",
        "quarantined or failed, with a reason",
        "ran again after an interruption (one result)",
        "lost",
        "duplicated",
        "partial or mismatched outputs",
        "orphaned temporary files",
    ];
    let mut counts: Vec<(String, usize, usize)> = order
        .iter()
        .map(|label| {
            let v = t.get(label).copied().unwrap_or_default();
            (label.to_string(), v.folder, v.bucket)
        })
        .collect();
    counts.push((
        "messages left in the queue".into(),
        0,
        (left.0 + left.1).max(0) as usize,
    ));
    let header = format!(
        "{secs} s of faults, a drop every {} ms on average, seed {seed}; daemon {}; settled: {}; \
         audit log = journal: {}",
        soak.gap_ms,
        if soak.tmpfs {
            "as `nobody`"
        } else {
            "as the test's user"
        },
        if settled { "yes" } else { "NO" },
        if audit_agrees.is_ok() { "yes" } else { "NO" },
    );
    Report {
        header,
        counts,
        faults,
        reasons,
        problems,
    }
}

/// The error with the input's own name taken out, so that alike failures group.
fn reason_class(reason: &str, key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    let r = reason.replace(key, "FILE").replace(name, "FILE");
    let r = r.split(" (").next().unwrap_or(&r).to_string();
    r.chars().take(110).collect()
}

/// Checks the four outputs of a folder input; Ok(deduplicated).
fn check_folder_outputs(
    soak: &Soak,
    d: &Dropped,
    expected: &mut BTreeSet<std::path::PathBuf>,
) -> Result<bool, String> {
    let s = stem(&d.name);
    for f in FORMATS {
        let p = soak.out.join(format!("{s}.{f}"));
        expected.insert(p.clone());
        if !p.is_file() {
            return Err(format!("{} is missing", p.display()));
        }
    }
    if !soak.inbox.join("done").join(&d.name).is_file() {
        return Err("the input is not in done/".into());
    }
    let json =
        std::fs::read_to_string(soak.out.join(format!("{s}.json"))).map_err(|e| e.to_string())?;
    check_json(&json, d)
}

fn check_bucket_outputs(
    w: &World,
    d: &Dropped,
    expected: &mut BTreeSet<String>,
) -> Result<bool, String> {
    let s = stem(&d.name);
    for f in FORMATS {
        let k = format!("transcripts/{s}.{f}");
        expected.insert(k.clone());
        if w.output(&k).is_none() {
            return Err(format!("{k} is missing"));
        }
    }
    let meta = w.output_meta(&format!("transcripts/{s}.txt"), INPUT_SHA_META);
    if meta.as_deref() != Some(d.sha256.as_str()) {
        return Err(format!("{s}.txt was made from {meta:?}"));
    }
    let json = w
        .output(&format!("transcripts/{s}.json"))
        .unwrap_or_default();
    check_json(&String::from_utf8_lossy(&json), d)
}

/// The JSON is whole, made from these bytes, and says something. Ok(deduplicated).
fn check_json(json: &str, d: &Dropped) -> Result<bool, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("the json does not parse: {e}"))?;
    if v["sha256"].as_str() != Some(d.sha256.as_str()) {
        return Err(format!("the json is of {} ", v["sha256"]));
    }
    if !v["source"].as_str().unwrap_or_default().ends_with(&d.name) {
        return Err(format!("the json names {}", v["source"]));
    }
    if v["text"].as_str().unwrap_or_default().trim().is_empty() {
        return Err("no text".into());
    }
    Ok(!v["deduplicated_from"].is_null())
}

/// The audit log holds exactly the journal's events, in order, once each.
fn audit_agrees(d: &Path) -> Result<(), String> {
    let (audit, journal) = audit_and_journal_events(d);
    if audit != journal {
        let at = audit.iter().zip(&journal).position(|(a, b)| a != b);
        return Err(format!(
            "the audit log ({} events) and the journal ({}) disagree, first at {at:?}",
            audit.len(),
            journal.len()
        ));
    }
    Ok(())
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Soak: {}.\n\n| | folder | bucket | total |\n|---|---:|---:|---:|\n",
            self.header
        );
        for (label, f, b) in &self.counts {
            let label = label
                .strip_prefix("  ")
                .map_or_else(|| label.clone(), |l| format!("&nbsp;&nbsp;{l}"));
            s += &format!("| {label} | {f} | {b} | {} |\n", f + b);
        }
        s += "\n| fault injected | times |\n|---|---:|\n";
        for (f, n) in &self.faults {
            s += &format!("| {} | {n} |\n", f.describe());
        }
        s += "\n| failure reason (file name taken out) | inputs |\n|---|---:|\n";
        for (r, n) in &self.reasons {
            s += &format!("| {} | {n} |\n", r.replace('|', "\\|"));
        }
        s += &format!("\nDiscrepancies: {}\n", self.problems.len());
        for p in self.problems.iter().take(50) {
            s += &format!("- {p}\n");
        }
        s
    }
}
