//! `[asr] idle_unload`: after that long without work the model is dropped (its memory is
//! given back) and the next file loads it again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn an_idle_model_is_unloaded_and_reloaded_for_the_next_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_daemon_config(d, "300ms");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("threads = 1\n", "threads = 1\nidle_unload = \"10s\"\n");
    std::fs::write(&config, text).unwrap();
    std::fs::create_dir_all(d.join("inbox")).unwrap();
    let log = d.join("daemon.log");
    let daemon = start_daemon_with(
        &config,
        Start {
            log: Some(&log),
            ..Start::default()
        },
    );
    let speech = speak(d, "u", "The model comes back for this file.", "en-us");
    std::fs::copy(&speech, d.join("inbox/one.wav")).unwrap();
    wait_until("the first transcript", || d.join("out/one.json").is_file());
    let loaded = rss_kb(daemon.child.id());
    let logged = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(what)
    };
    // On a loaded machine a 3 s limit ran out before the first sample was taken: both
    // samples were then of the unloaded daemon.
    assert!(
        !logged("model unloaded after being idle"),
        "the model was unloaded before its RSS was sampled: raise idle_unload here"
    );
    wait_until("the unload", || logged("model unloaded after being idle"));
    let unloaded = rss_kb(daemon.child.id());
    println!("RSS with the model {loaded} kB, after unloading {unloaded} kB");
    assert!(unloaded < loaded, "RSS {loaded} kB → {unloaded} kB");
    // Other words: the same bytes would be answered from the first result.
    let other = speak(
        d,
        "v",
        "The model is needed again for these words.",
        "en-us",
    );
    std::fs::copy(&other, d.join("inbox/two.wav")).unwrap();
    wait_until("the second transcript", || d.join("out/two.json").is_file());
    assert!(logged("model loaded again for new work"));
    let two: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out/two.json")).unwrap()).unwrap();
    assert!(
        two["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("model"),
        "{two}"
    );
    stop(daemon);
}
