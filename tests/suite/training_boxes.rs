//! Two daemons feeding one `s3://` dataset (the emulator): each writes only its own manifest
//! shard; the hours that make the dataset due are counted over both; exactly one run starts,
//! elected through the lease in the bucket, and it trains on both boxes' lines. A third
//! daemon started with a box id already in use is refused the shard instead of overwriting
//! it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::common::moto::world;
use crate::common::*;
use serde_json::Value;

const DATASET: &str = "datasets/calls";

fn config(d: &Path, box_id: &str, threshold_hours: f64) -> (PathBuf, PathBuf) {
    let inbox = d.join(format!("inbox-{box_id}"));
    std::fs::create_dir_all(&inbox).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/script_trainer.py");
    let config = d.join(format!("{box_id}.toml"));
    std::fs::write(
        &config,
        format!(
            "[daemon]\nbox_id = {box_id:?}\n\
             [journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n\
             [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"500ms\"\n\
             [[dataset]]\nname = \"calls\"\nsources = [{inbox:?}]\n\
             path = \"s3://results/{DATASET}\"\nforce_path_style = true\n\
             train_after_hours = {threshold_hours}\nmin_segment_seconds = 0.5\n\
             [dataset.trainer]\ncommand = [\"python3\", {script:?}, \"ok\"]\n",
            d.join(format!("state-{box_id}/journal.sqlite")),
            model("tiny.en"),
            d.join(format!("out-{box_id}")),
        ),
    )
    .unwrap();
    (config, inbox)
}

fn seconds_of(wav: &Path) -> f64 {
    (std::fs::metadata(wav).unwrap().len() - 44) as f64 / 32_000.0
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_boxes_feed_one_s3_dataset_and_exactly_one_run_trains_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = world(&[]);
    let a_wav = speak(
        d,
        "a",
        "The first box hears a sentence about the weather on the coast today.",
        "en-us",
    );
    let b_wav = speak(
        d,
        "b",
        "The second box hears a sentence about the trains that leave at noon.",
        "en-us",
    );
    // Neither box's piece of the dataset reaches the threshold alone; together they do.
    let (a_secs, b_secs) = (seconds_of(&a_wav), seconds_of(&b_wav));
    let threshold = 0.6 * (a_secs + b_secs);
    assert!(threshold > a_secs.max(b_secs), "{a_secs} {b_secs}");
    let (a_config, a_inbox) = config(d, "a", threshold / 3600.0);
    let (b_config, b_inbox) = config(d, "b", threshold / 3600.0);
    let start = |config: &Path, log: &Path| {
        start_daemon_with(
            config,
            Start {
                env: w.moto.env(),
                log: Some(log),
                ..Start::default()
            },
        )
    };
    let a = start(&a_config, &d.join("a.log"));
    let b = start(&b_config, &d.join("b.log"));
    std::fs::copy(&a_wav, a_inbox.join("a.wav")).unwrap();
    std::fs::copy(&b_wav, b_inbox.join("b.wav")).unwrap();

    let shard = |box_id: &str| w.output(&format!("{DATASET}/manifests/{box_id}.jsonl"));
    let runs = || -> Vec<String> {
        w.output_keys()
            .into_iter()
            .filter(|k| k.starts_with(&format!("{DATASET}/runs/")) && k.ends_with("/run.json"))
            .collect()
    };
    wait_until("a run complete in S3", || !runs().is_empty());
    // Two more passes of both trainer loops: nothing else is due.
    std::thread::sleep(std::time::Duration::from_secs(12));
    let logs = || {
        format!(
            "{}\n{}",
            std::fs::read_to_string(d.join("a.log")).unwrap_or_default(),
            std::fs::read_to_string(d.join("b.log")).unwrap_or_default()
        )
    };
    let run_keys = runs();
    assert_eq!(run_keys.len(), 1, "{run_keys:?}\n{}", logs());
    let local_runs: usize = ["a", "b"]
        .iter()
        .map(|b| {
            std::fs::read_dir(d.join(format!("state-{b}/datasets/calls/runs")))
                .map(|e| e.count())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(local_runs, 1, "one run folder across both boxes");

    // Each box's shard holds its own lines only.
    let source_of = |l: &Value| l["source"].as_str().unwrap().to_string();
    let a_lines = lines(&shard("a").expect("box a's shard"));
    let b_lines = lines(&shard("b").expect("box b's shard"));
    assert!(!a_lines.is_empty() && !b_lines.is_empty());
    assert!(a_lines
        .iter()
        .all(|l| source_of(l).ends_with("inbox-a/a.wav")));
    assert!(b_lines
        .iter()
        .all(|l| source_of(l).ends_with("inbox-b/b.wav")));

    // The run trained (and held out) both boxes' lines.
    let prefix = run_keys[0].trim_end_matches("run.json").to_string();
    let record: Value = serde_json::from_slice(&w.output(&run_keys[0]).unwrap()).unwrap();
    assert_eq!(record["state"], "succeeded", "{record}");
    let taken = &record["boxes"]["lines"];
    assert!(taken["a"].as_u64().unwrap() >= 1, "{record}");
    assert!(taken["b"].as_u64().unwrap() >= 1, "{record}");
    let mut frozen = lines(&w.output(&format!("{prefix}manifest.jsonl")).unwrap());
    frozen.extend(lines(&w.output(&format!("{prefix}eval.jsonl")).unwrap()));
    let sources: std::collections::BTreeSet<String> = frozen.iter().map(source_of).collect();
    assert_eq!(sources.len(), 2, "{sources:?}");
    for l in &frozen {
        let audio = l["audio_filepath"].as_str().unwrap();
        assert!(
            Path::new(audio).is_file(),
            "{audio} is not on the training box"
        );
    }
    // The lease is given back with the run's end and the seconds it counted from.
    let lease: Value =
        serde_json::from_slice(&w.output(&format!("{DATASET}/training-lease.json")).unwrap())
            .unwrap();
    assert_eq!(lease["running"], false, "{lease}");
    assert_eq!(lease["last_run"]["state"], "succeeded", "{lease}");
    assert_eq!(
        lease["last_run"]["id"].as_str().unwrap(),
        record["run_id"].as_str().unwrap()
    );
    for b in ["a", "b"] {
        assert!(lease["watermark"][b].as_f64().unwrap() > 0.0, "{lease}");
    }
    stop(b);

    // A third daemon, by mistake named like the first: it must not overwrite a's shard.
    let c_config = d.join("c.toml");
    let text = std::fs::read_to_string(&a_config)
        .unwrap()
        .replace("state-a", "state-c")
        .replace("inbox-a", "inbox-c")
        .replace("out-a", "out-c");
    std::fs::write(&c_config, text).unwrap();
    std::fs::create_dir_all(d.join("inbox-c")).unwrap();
    let c = start(&c_config, &d.join("c.log"));
    std::fs::copy(&b_wav, d.join("inbox-c/c.wav")).unwrap();
    let c_log = || std::fs::read_to_string(d.join("c.log")).unwrap_or_default();
    wait_until("the shard conflict reported", || {
        c_log().contains("is written by another daemon")
    });
    assert!(c_log().contains("box_id"), "{}", c_log());
    let still = lines(&shard("a").unwrap());
    assert_eq!(still, a_lines, "a's shard was overwritten");
    stop(c);
    stop(a);
}
