//! The model registry through crashes (issue 19): `kill -9` of `hotfolderd model promote` /
//! `rollback` mid-change and of the daemon mid-swap leaves exactly one serving model, and
//! a restarted daemon serves what the registry says, not what `[asr] model` names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

const TEXT: &str = "A short sentence for the model.";

fn config(d: &Path, model_name: &str) -> PathBuf {
    let config = d.join("hotfolderd.toml");
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 2\nlanguage = \"en\"\n\
             [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"300ms\"\n",
            d.join("state/journal.sqlite"),
            model(model_name),
            d.join("out"),
        ),
    )
    .unwrap();
    config
}

fn models(config: &Path) -> Vec<Value> {
    serde_json::from_str(&hotfolderd(&["model", "list", "--json"], config)).unwrap()
}

fn serving(config: &Path) -> String {
    let all = models(config);
    let serving: Vec<&Value> = all.iter().filter(|m| m["state"] == "serving").collect();
    assert_eq!(serving.len(), 1, "exactly one serving model: {all:?}");
    serving[0]["sha256"].as_str().unwrap().to_string()
}

#[test]
fn kill_9_mid_promotion_or_mid_swap_leaves_exactly_one_serving_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (tiny, base) = (
        hotfolderd::hash::sha256_file(&model("tiny.en")).unwrap(),
        hotfolderd::hash::sha256_file(&model("base")).unwrap(),
    );
    // tiny.en registers first; then base, a content the registry never saw, takes over.
    let registered = |config: &Path, sha: &str| {
        let daemon = start_daemon(config);
        wait_until("the model registered", || {
            d.join("state/journal.sqlite").is_file()
                && models(config)
                    .iter()
                    .any(|m| m["sha256"] == sha && m["state"] == "serving")
        });
        stop(daemon);
    };
    registered(&config(d, "tiny.en"), &tiny);
    let config_base = config(d, "base");
    registered(&config_base, &base);
    assert_eq!(serving(&config_base), base);

    // Back on a configuration naming tiny.en, a model the registry knows: base still serves.
    let config = config(d, "tiny.en");
    let log = d.join("daemon.log");
    let daemon = start_daemon_with(
        &config,
        Start {
            log: Some(&log),
            ..Start::default()
        },
    );
    assert_eq!(transcribed_by(d, "first", TEXT), base);

    // Promotions and rollbacks killed at every point of their transaction.
    let bin = env!("CARGO_BIN_EXE_hotfolderd");
    for i in 0..12u64 {
        let args: &[&str] = if i % 2 == 0 {
            &["model", "promote", "1"]
        } else {
            &["model", "rollback"]
        };
        let mut child = Command::new(bin)
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(i * 3));
        let _ = child.kill();
        let _ = child.wait();
        serving(&config);
    }
    // Whatever serves now, the daemon catches up with it, with no load still in flight: a
    // load of the model the loop passed through, ending after the next promotion, would
    // make that promotion need no load of its own.
    let now = serving(&config);
    let logged = |what: &str| std::fs::read_to_string(&log).unwrap().matches(what).count();
    let loads = || logged("the registry serves another model: loading it");
    let settled = || loads() == logged("model swapped: ") + logged("cannot serve the model");
    let mut attempt = 0;
    wait_until("the daemon serves what the registry says", || {
        attempt += 1;
        settled() && transcribed_by(d, &format!("check{attempt}"), TEXT) == now
    });

    // The daemon killed right as it swaps; the next start serves the registry's model.
    let other = if now == tiny { "2" } else { "1" };
    let before = loads();
    hotfolderd(&["model", "promote", other], &config);
    let want = serving(&config);
    wait_until("the swap begins", || loads() > before);
    let mut daemon = daemon;
    signal_daemon(&mut daemon, "KILL");
    assert_eq!(serving(&config), want);
    let daemon = start_daemon(&config);
    assert_eq!(transcribed_by(d, "after_restart", TEXT), want);
    stop(daemon);
}
