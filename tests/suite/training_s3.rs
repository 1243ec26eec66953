//! A dataset stored in S3 (the emulator), fed by a watched folder and by S3 uploads: its
//! segment audio, manifest (with `s3://` audio paths) and each run's folder, `run.json`
//! last, end up in the bucket; `training_finished` waits until they have, and names every
//! file of the run with a presigned link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use crate::common::hook::Hook;
use crate::common::moto::world;
use crate::common::*;
use serde_json::Value;

#[test]
fn a_dataset_in_s3_gets_its_audio_manifest_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = world(&[]);
    let hook = Hook::start();
    std::fs::write(d.join("webhook.secret"), "s3cret\n").unwrap();
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/script_trainer.py");
    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nbox_id = \"one\"\n[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n\
             [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"500ms\"\n\
             [[s3]]\nqueue_url = {:?}\ninput_bucket = \"media\"\ninput_prefix = \"in/\"\n\
             output_bucket = \"results\"\noutput_prefix = \"transcripts/\"\nwait_time = \"1s\"\n\
             force_path_style = true\n\
             [[dataset]]\nname = \"calls\"\nsources = [{inbox:?}, {:?}]\n\
             path = \"s3://results/datasets/calls\"\nforce_path_style = true\n\
             train_after_hours = 0.0012\nmin_segment_seconds = 0.5\n\
             [dataset.trainer]\ncommand = [\"python3\", {script:?}, \"ok\"]\n\
             [[notify]]\nkind = \"webhook\"\nurl = {:?}\nsecret_file = {:?}\n\
             events = [\"training_finished\"]\nforce_path_style = true\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            d.join("out"),
            w.queue_url,
            w.queue_url,
            hook.url(),
            d.join("webhook.secret"),
        ),
    )
    .unwrap();
    let daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    );
    let speech = |name: &str| {
        speak(
            d,
            name,
            &format!("The recording named {name} goes into the dataset."),
            "en-us",
        )
    };
    std::fs::copy(speech("local"), inbox.join("local.wav")).unwrap();
    w.upload("in/remote.wav", std::fs::read(speech("remote")).unwrap());

    let key_of_run = || {
        w.output_keys()
            .into_iter()
            .find(|k| k.starts_with("datasets/calls/runs/") && k.ends_with("/run.json"))
    };
    // Sent only once the run is complete in S3: when it arrives, run.json (copied last) is.
    let finished = || {
        hook.received()
            .iter()
            .map(|r| r.json())
            .find(|j| j["event"] == "training_finished")
    };
    wait_until("training_finished", || finished().is_some());
    let in_s3_when_said = key_of_run();
    let said = finished().unwrap();
    stop(daemon);

    let run_key = in_s3_when_said.unwrap_or_else(|| panic!("run.json not in S3 yet: {said}"));
    let run_id = said["run"]["id"].as_str().unwrap();
    let run_prefix = format!("datasets/calls/runs/{run_id}/");
    assert_eq!(run_key, format!("{run_prefix}run.json"));
    let artifacts = &said["artifacts"];
    assert_eq!(
        artifacts["uri"],
        format!("s3://results/{run_prefix}").as_str(),
        "{said}"
    );
    let files = artifacts["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    for name in [
        "run.json",
        "manifest.jsonl",
        "train.log",
        "output/model.bin",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    for f in files {
        let key = format!("{run_prefix}{}", f["name"].as_str().unwrap());
        assert_eq!(f["uri"], format!("s3://results/{key}").as_str());
        let held = w.output(&key).unwrap_or_else(|| panic!("{key} not in S3"));
        assert_eq!(f["bytes"], held.len(), "{key}");
        assert!(
            f["url"].as_str().unwrap().contains("X-Amz-Signature="),
            "{f}"
        );
    }
    // The presigned link downloads the run's record.
    let record = files.iter().find(|f| f["name"] == "run.json").unwrap();
    let url = record["url"].as_str().unwrap();
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
    let (port, path) = rest.split_once('/').unwrap();
    let (status, body) = http_get(port.parse().unwrap(), &format!("/{path}"), None);
    assert_eq!(status, 200, "{url}: {body}");
    assert_eq!(body.as_bytes(), w.output(&run_key).unwrap().as_slice());

    let run: Value = serde_json::from_slice(&w.output(&run_key).unwrap()).unwrap();
    assert_eq!(run["state"], "succeeded", "{run}");
    // The only box feeding the dataset: its lines, under the lease it gave back.
    assert!(run["boxes"]["lines"]["one"].as_u64().unwrap() >= 1, "{run}");
    let lease: Value =
        serde_json::from_slice(&w.output("datasets/calls/training-lease.json").unwrap()).unwrap();
    assert_eq!(lease["last_run"]["id"], run_id, "{lease}");
    assert_eq!(lease["running"], false, "{lease}");
    let keys = w.output_keys();
    for file in [
        "manifest.jsonl",
        "train.log",
        "metrics.jsonl",
        "output/model.bin",
    ] {
        assert!(
            keys.contains(&format!("{run_prefix}{file}")),
            "{file} missing from {keys:?}"
        );
    }
    let manifest =
        String::from_utf8(w.output("datasets/calls/manifests/one.jsonl").unwrap()).unwrap();
    let lines: Vec<Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sources: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|l| l["source"].as_str().unwrap())
        .collect();
    assert!(sources.contains("s3://media/in/remote.wav"), "{sources:?}");
    assert!(
        sources.iter().any(|s| s.ends_with("inbox/local.wav")),
        "{sources:?}"
    );
    for l in &lines {
        let audio = l["audio_filepath"].as_str().unwrap();
        let key = audio
            .strip_prefix("s3://results/")
            .unwrap_or_else(|| panic!("not an S3 path: {audio}"));
        let wav = w
            .output(key)
            .unwrap_or_else(|| panic!("{audio} is not in S3"));
        let secs = (wav.len() - 44) as f64 / 32_000.0;
        assert!((secs - l["duration"].as_f64().unwrap()).abs() < 1e-6);
    }
}

/// A run's 64 MiB artifact goes up in 8 parts; S3 goes away after the first parts are in:
/// the copy backs off behind the breaker, and once S3 is back it sends only the missing
/// parts of the same upload, and the object is whole.
#[test]
fn a_large_run_upload_cut_by_an_outage_resumes_where_it_stopped() {
    use crate::common::proxy::Proxy;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = world(&[]);
    let mut proxy = Proxy::start(w.moto.port);
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/script_trainer.py");
    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nbox_id = \"one\"\n[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n\
             [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"500ms\"\n\
             [[dataset]]\nname = \"calls\"\nsources = [{inbox:?}]\n\
             path = \"s3://results/datasets/calls\"\nforce_path_style = true\n\
             train_after_hours = 0.0005\nmin_segment_seconds = 0.5\n\
             [dataset.trainer]\ncommand = [\"python3\", {script:?}, \"big\"]\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            d.join("out"),
        ),
    )
    .unwrap();
    let log = d.join("daemon.log");
    let daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env_at(proxy.port),
            log: Some(&log),
            ..Start::default()
        },
    );
    let wav = speak(
        d,
        "a",
        "A run with a large artifact goes to the bucket.",
        "en-us",
    );
    std::fs::copy(wav, inbox.join("a.wav")).unwrap();
    let runs = "datasets/calls/runs/";
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let record = || {
        w.output_keys()
            .into_iter()
            .find(|k| k.starts_with(runs) && k.ends_with("/run.json"))
    };
    // Cut as soon as the first part is in.
    wait_until("the first part of the upload", || {
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(
            record().is_none(),
            "copied before a part was seen:\n{}",
            read_log()
        );
        w.uploads_in_progress(runs).iter().any(|(_, n)| *n >= 1)
    });
    proxy.cut();
    wait_until("the outage noticed", || {
        read_log().contains("S3 cannot be reached to copy the dataset")
    });
    let before = w.uploads_in_progress(runs);
    assert_eq!(before.len(), 1, "{before:?}");
    let (key, parts_before) = before[0].clone();
    assert!(key.ends_with("/output/weights.bin"), "{key}");
    assert!((1..8).contains(&parts_before), "{before:?}");
    proxy.restore();
    wait_until("the run complete in S3", || record().is_some());
    stop(daemon);
    let local = d
        .join("state/datasets/calls")
        .join(key.strip_prefix("datasets/calls/").unwrap());
    let held = w.output(&key).unwrap();
    assert_eq!(held.len(), 64 << 20);
    assert!(held == std::fs::read(&local).unwrap(), "{key} differs");
    // Without the terminal colours the log file carries.
    let said: String = read_log()
        .split('\u{1b}')
        .map(|piece| match piece.strip_prefix('[') {
            Some(rest) => rest.split_once('m').map_or(rest, |(_, after)| after),
            None => piece,
        })
        .collect();
    let resumed = said
        .lines()
        .find(|l| l.contains("multipart upload resumed"))
        .unwrap_or_else(|| panic!("no resumed upload in the log:\n{said}"));
    // The parts S3 held whole when the link was cut are not sent again. A part cut while it
    // was being sent may be held short: it is sent again, so fewer may count as there.
    let there: u64 = resumed
        .split("already_there=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{resumed}"));
    assert!(
        (1..=parts_before as u64).contains(&there),
        "{resumed} (S3 held {parts_before} parts at the cut)"
    );
    assert!(
        w.uploads_in_progress(runs).is_empty(),
        "an upload left open"
    );
}
