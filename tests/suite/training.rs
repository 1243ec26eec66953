//! Datasets and training runs with the real daemon: speech dropped into a folder that
//! feeds a dataset becomes manifest lines and segment WAVs; crossing `train_after_hours`
//! starts one supervised run, whose folder (frozen manifest, log, artifacts, `run.json`)
//! lands in the dataset. Failing, hanging and killed trainers, and a daemon killed mid-run,
//! are each recorded, and the hours are not reset by a run that did not succeed. The
//! trainer here is a small script (tests/fixtures/script_trainer.py) that exercises the
//! supervisor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use hotfolderd::dataset::manifest::Label;
use serde_json::Value;

/// A daemon config: folder `inbox` feeds dataset `calls` at `datasets/calls`; the script
/// trainer runs in `mode`. `trainer` adds keys to `[dataset.trainer]`.
fn config(d: &Path, hours: f64, mode: &str, trainer: &str) -> PathBuf {
    let config = d.join("hotfolderd.toml");
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/script_trainer.py");
    let retry = if trainer.contains("retry_after") {
        ""
    } else {
        "retry_after = \"1s\"\n"
    };
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n\
             [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"500ms\"\n\
             [[dataset]]\nname = \"calls\"\nsources = [{inbox:?}]\npath = {:?}\n\
             train_after_hours = {hours}\nmin_segment_seconds = 0.5\n\
             [dataset.trainer]\ncommand = [\"python3\", {script:?}, {mode:?}]\n\
             kill_after = \"1s\"\n{retry}{trainer}\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            d.join("out"),
            d.join("datasets/calls"),
        ),
    )
    .unwrap();
    config
}

fn drop_speech(d: &Path, names: &[&str]) {
    for name in names {
        let wav = speak(
            d,
            name,
            &format!("This is the recording called {name}, kept for training."),
            "en-us",
        );
        std::fs::copy(&wav, d.join("inbox").join(format!("{name}.wav"))).unwrap();
    }
}

/// Published runs: (folder, run.json).
fn runs(d: &Path) -> Vec<(PathBuf, Value)> {
    let dir = d.join("datasets/calls/runs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Value)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with(".partial"))
        .filter_map(|p| {
            let json = std::fs::read(p.join("run.json")).ok()?;
            Some((p, serde_json::from_slice(&json).unwrap()))
        })
        .collect();
    out.sort_by_key(|(_, r)| r["started_at"].as_str().unwrap_or_default().to_string());
    out
}

/// The folder of the run in progress, once its trainer wrote its pids.
fn running_pids(d: &Path) -> (PathBuf, Vec<i32>) {
    let dir = d.join("datasets/calls/runs");
    let mut found = None;
    wait_until("a running trainer", || {
        found = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries.flatten().map(|e| e.path()).find_map(|p| {
                let pids = std::fs::read_to_string(p.join("pids")).ok()?;
                p.to_string_lossy()
                    .ends_with(".partial")
                    .then(|| (p.clone(), pids))
            })
        });
        found.as_ref().is_some_and(|(_, pids)| pids.ends_with('\n'))
    });
    let (p, pids) = found.unwrap();
    let pids = pids
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    (p, pids)
}

/// Starts the daemon on a fresh config, drops one input and waits for its trainer to run:
/// (daemon, run folder, trainer pids).
fn start_run(d: &Path, mode: &str, trainer: &str) -> (Daemon, PathBuf, Vec<i32>) {
    let daemon = start_daemon(&config(d, 0.0005, mode, trainer));
    drop_speech(d, &["one"]);
    let (partial, pids) = running_pids(d);
    (daemon, partial, pids)
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes: its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
}

#[test]
fn crossing_the_threshold_starts_exactly_one_run_whose_record_lands_in_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Each file is about 3 s of speech; 0.0015 h = 5.4 s is crossed by the second.
    let config = config(d, 0.0015, "ok", "");
    let daemon = start_daemon(&config);
    drop_speech(d, &["first", "second"]);
    wait_until("a run", || !runs(d).is_empty());
    // A corrupt line in the manifest, and a third input below the threshold.
    let manifest = d.join("datasets/calls/manifest.jsonl");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&manifest)
            .unwrap();
        f.write_all(b"this is not json\n").unwrap();
    }
    drop_speech(d, &["third"]);
    wait_until("the third input", || d.join("out/third.json").is_file());
    std::thread::sleep(Duration::from_secs(7));
    let status_text = status(&config);
    stop(daemon);

    let all = runs(d);
    assert_eq!(all.len(), 1, "one run, not {all:?}");
    let (folder, run) = &all[0];
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["dataset"], "calls");
    let hours = run["hours"].as_f64().unwrap() + run["eval_hours"].as_f64().unwrap();
    assert!(hours >= 0.0015, "{run}");
    assert_eq!(run["metrics"].as_array().unwrap().len(), 2, "{run}");
    assert_eq!(run["metrics"][1]["loss"], 0.5);
    let artifacts: Vec<&str> = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        artifacts,
        vec!["output/checkpoints/step-1.txt", "output/model.bin"]
    );
    assert!(folder.join("output/model.bin").is_file());
    assert!(folder.join("manifest.jsonl").is_file());
    let log = std::fs::read_to_string(folder.join("train.log")).unwrap();
    assert!(log.contains("a line for stderr") && log.contains("training calls run"));
    assert_eq!(
        run["manifest_sha256"].as_str().unwrap(),
        hotfolderd::hash::sha256_file(&folder.join("manifest.jsonl")).unwrap()
    );
    // The held-out split, frozen in the run: each input on the side its content picks, the
    // trainer seeing only its own side.
    use hotfolderd::dataset::{manifest as m, split};
    let (train, held) = (
        m::read(&folder.join("manifest.jsonl")).unwrap(),
        m::read(&folder.join("eval.jsonl")).unwrap(),
    );
    assert_eq!(run["eval_fraction"], 0.1);
    assert_eq!(run["eval_manifest"], "eval.jsonl");
    assert_eq!(run["eval_segments"], held.lines.len());
    assert_eq!(
        run["eval_manifest_sha256"].as_str().unwrap(),
        hotfolderd::hash::sha256_file(&folder.join("eval.jsonl")).unwrap()
    );
    assert_eq!(run["metrics"][0]["segments"], train.lines.len());
    assert!(
        train.lines.len() + held.lines.len() >= 2,
        "{train:?} {held:?}"
    );
    for l in &train.lines {
        assert!(!split::held_out(&l.sha256, 0.1), "{l:?}");
    }
    for l in &held.lines {
        assert!(split::held_out(&l.sha256, 0.1), "{l:?}");
    }

    // The dataset: every line's audio exists with the stated duration, cut from its input.
    let tiny_sha = hotfolderd::hash::sha256_file(&model("tiny.en")).unwrap();
    let contents = hotfolderd::dataset::manifest::read(&manifest).unwrap();
    assert_eq!(contents.bad.len(), 1);
    assert!(contents.bad[0].reason.contains("not a manifest line"));
    let sources: std::collections::BTreeSet<&str> =
        contents.lines.iter().map(|l| l.source.as_str()).collect();
    assert_eq!(sources.len(), 3, "{sources:?}");
    for l in &contents.lines {
        let bytes = std::fs::metadata(&l.audio_filepath).unwrap().len();
        let secs = (bytes - 44) as f64 / 32_000.0;
        assert!((secs - l.duration).abs() < 1e-6, "{l:?}");
        assert!(l.duration > 0.5 && l.duration <= 30.0);
        assert!(!l.text.trim().is_empty());
        assert!(l.text.to_lowercase().contains("recording"), "{l:?}");
        // Who labelled it, with which model, and how sure the model was.
        assert_eq!(l.label, Some(Label::Machine), "{l:?}");
        assert_eq!(l.model_sha256.as_deref(), Some(tiny_sha.as_str()), "{l:?}");
        assert!(
            l.avg_logprob.is_some_and(|p| (-1.0..0.0).contains(&p)),
            "{l:?}"
        );
        assert!(l.no_speech_prob.is_some_and(|p| p <= 0.6), "{l:?}");
        assert!(
            l.compression_ratio.is_some_and(|c| c > 0.0 && c <= 2.4),
            "{l:?}"
        );
    }
    // The json output names the model by its sha256 too.
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/third.json")).unwrap()).unwrap();
    assert_eq!(json["model_sha256"], tiny_sha.as_str());
    assert!(json["segments"][0]["compression_ratio"].as_f64().unwrap() > 0.0);
    // The ledger counts what was added, not what the manifest file says.
    let total: f64 = contents.lines.iter().map(|l| l.duration).sum();
    let expect = format!("{:.3} h in all", total / 3600.0);
    assert!(status_text.contains(&expect), "{expect} in\n{status_text}");
    assert!(status_text.contains("succeeded"), "{status_text}");
}

#[test]
fn a_failed_run_keeps_the_hours_and_the_next_run_follows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, 0.0005, "fail-once", "");
    let daemon = start_daemon(&config);
    drop_speech(d, &["one"]);
    wait_until("two runs", || runs(d).len() >= 2);
    let status_text = status(&config);
    stop(daemon);
    let all = runs(d);
    assert_eq!(all[0].1["state"], "failed");
    assert_eq!(all[0].1["exit_code"], 3);
    assert_eq!(all[0].1["detail"], "exit status 3");
    assert_eq!(all[1].1["state"], "succeeded", "{}", all[1].1);
    // The failed run did not take the hours: the second trained on the same ones.
    assert_eq!(all[0].1["hours"], all[1].1["hours"]);
    assert!(
        status_text
            .lines()
            .any(|l| l.contains(" failed (") && l.ends_with("exit status 3")),
        "{status_text}"
    );
}

#[test]
fn a_hanging_trainer_is_killed_with_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (daemon, _, pids) = start_run(d, "hang", "timeout = \"4s\"\nretry_after = \"1h\"");
    wait_until("the timed-out run", || !runs(d).is_empty());
    stop(daemon);
    let (_, run) = &runs(d)[0];
    assert_eq!(run["state"], "failed");
    assert_eq!(run["detail"], "timed out after 4s");
    assert_eq!(run["signal"], 9, "SIGTERM was ignored, so SIGKILL: {run}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the trainer's group survived");
    }
}

#[test]
fn a_trainer_killed_by_a_signal_is_a_failed_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (daemon, _, pids) = start_run(d, "wait", "retry_after = \"1h\"");
    run(std::process::Command::new("kill").args(["-9", &pids[0].to_string()]));
    wait_until("the killed run", || !runs(d).is_empty());
    stop(daemon);
    let (_, r) = &runs(d)[0];
    assert_eq!(r["state"], "failed");
    assert_eq!(r["detail"], "killed by signal 9");
    assert!(!alive(pids[1]), "the trainer's child outlived it");
}

#[test]
fn a_run_cut_off_by_the_daemons_death_is_recorded_and_redone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut daemon, partial, pids) = start_run(d, "wait", "");
    assert!(signal_daemon(&mut daemon, "KILL").code().is_none());
    // The trainer has its own process group: it outlives a kill -9 of the daemon…
    assert!(alive(pids[0]));
    // …until the daemon comes back, stops it, and records the run as interrupted.
    let cfg = config(d, 0.0005, "ok", "");
    let daemon = start_daemon(&cfg);
    wait_until("the interrupted run and its successor", || {
        runs(d).len() >= 2
    });
    stop(daemon);
    for pid in pids {
        assert!(!alive(pid), "trainer process {pid} survived the restart");
    }
    let all = runs(d);
    assert_eq!(all[0].1["state"], "interrupted", "{}", all[0].1);
    assert!(
        !partial.exists(),
        "the interrupted run's folder was published"
    );
    assert_eq!(all[1].1["state"], "succeeded");
}

#[test]
fn sigterm_during_a_run_interrupts_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (daemon, _, pids) = start_run(d, "wait", "retry_after = \"1h\"");
    stop(daemon);
    let all = runs(d);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1["state"], "interrupted");
    for pid in pids {
        assert!(!alive(pid));
    }
}

/// The fine-tuning recipe the project ships (trainers/whisper_finetune.py: PyTorch +
/// transformers on CPU) fine-tunes the real tiny.en, exported with `model export-hf`, as the
/// dataset's trainer; its model is published with the run, and import-hf makes it serve.
#[test]
fn the_shipped_trainer_fine_tunes_on_the_dataset_and_its_checkpoint_is_published() {
    let python = crate::hf_models::trainer_python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, 0.001, "unused", "");
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("trainers/whisper_finetune.py");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let base = d.join("hf-tiny.en");
    let exported = std::process::Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(["model", "export-hf"])
        .arg(crate::common::model("tiny.en"))
        .arg("--out")
        .arg(&base)
        .status()
        .unwrap();
    assert!(exported.success());
    let command = format!(
        "command = [{python:?}, {recipe:?}, \"--model\", {base:?}, \"--max-steps\", \"3\", \"--batch-size\", \"2\", \"--learning-rate\", \"1e-5\", \"--warmup-steps\", \"1\"]"
    );
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("command = ") {
                command.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, text + "\ntimeout = \"10m\"\n").unwrap();
    let daemon = start_daemon(&cfg);
    drop_speech(d, &["alpha", "beta"]);
    wait_until("a finished run", || !runs(d).is_empty());
    stop(daemon);
    let (folder, run) = &runs(d)[0];
    assert_eq!(
        run["state"],
        "succeeded",
        "{run}\n{}",
        std::fs::read_to_string(folder.join("train.log")).unwrap_or_default()
    );
    let metrics = run["metrics"].as_array().unwrap();
    let losses: Vec<f64> = metrics.iter().filter_map(|m| m["loss"].as_f64()).collect();
    assert_eq!(losses.len(), 3, "{metrics:?}");
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0));
    assert_eq!(metrics[0]["event"], "manifest");
    assert!(metrics[0]["segments"].as_u64().unwrap() >= 2);
    assert_eq!(metrics.last().unwrap()["event"], "done");
    let artifacts: Vec<&str> = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert!(
        artifacts.contains(&"output/final/model.safetensors"),
        "{artifacts:?}"
    );
    let trained = d.join("trained.bin");
    let imported = std::process::Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(["model", "import-hf"])
        .arg(folder.join("output/final"))
        .arg("--out")
        .arg(&trained)
        .status()
        .unwrap();
    assert!(imported.success());
    let wav = crate::common::speak(d, "check", "Alpha beta gamma delta.", "en-us");
    let t = crate::common::transcribe_file(
        &hotfolderd::pipeline::transcribe::WhisperTranscriber::load(&trained).unwrap(),
        &wav,
        &crate::common::options(),
    );
    assert!(
        !t.text().trim().is_empty(),
        "the trained model transcribes nothing"
    );
}

#[test]
fn an_exclusive_run_holds_transcription_and_a_shared_one_does_not() {
    for (policy, waits) in [("exclusive", true), ("shared", false)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cfg = config(
            d,
            0.0005,
            "wait",
            &format!("gpu_policy = {policy:?}\nretry_after = \"1h\""),
        );
        let log = d.join("daemon.log");
        let daemon = start_daemon_with(
            &cfg,
            Start {
                log: Some(&log),
                ..Start::default()
            },
        );
        drop_speech(d, &["one"]);
        let (_, pids) = running_pids(d);
        drop_speech(d, &["two"]);
        let two = d.join("out/two.json");
        let said = || std::fs::read_to_string(&log).unwrap();
        if waits {
            // The serving model's weights are out of memory while the run holds the GPU.
            assert!(
                said().contains("model unloaded for an exclusive training run"),
                "{}",
                said()
            );
            // Long enough for "two" to be transcribed several times over were it allowed.
            std::thread::sleep(Duration::from_secs(15));
            assert!(
                !two.exists(),
                "transcribed while an exclusive run held the GPU"
            );
            run(std::process::Command::new("kill").args(["-9", &pids[0].to_string()]));
        }
        wait_until("the second input's transcript", || two.is_file());
        if waits {
            assert!(
                said().contains("model loaded again after the exclusive run"),
                "{}",
                said()
            );
        } else {
            assert!(alive(pids[0]), "the shared run should still be going");
            assert!(!said().contains("unloaded"), "{}", said());
        }
        stop(daemon);
    }
}

/// Unmounts a tmpfs when the test ends, passed or not.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_dataset_disk_holds_training_and_keep_runs_removes_old_run_folders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, 0.0005, "fail-once", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = format!("[daemon]\nmin_free_disk = \"1MiB\"\n{text}")
        .replace("[dataset.trainer]", "keep_runs = 1\n[dataset.trainer]");
    std::fs::write(&config, text).unwrap();
    let log = d.join("daemon.log");
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    // The dataset on a real, small tmpfs (root only), nearly full: below the floor.
    let datasets = d.join("datasets");
    std::fs::create_dir_all(&datasets).unwrap();
    let mounted = is_root().then(|| {
        run(std::process::Command::new("mount")
            // Room, once freed, for the serving model exported for the trainer (~150 MB).
            .args(["-t", "tmpfs", "-o", "size=300m", "tmpfs"])
            .arg(&datasets));
        Mounted(datasets.clone())
    });
    let ballast = datasets.join("ballast");
    if mounted.is_some() {
        std::fs::write(&ballast, vec![7u8; 599 << 19]).unwrap();
    } else {
        eprintln!("not root: cannot mount a tmpfs; the disk floor part is skipped");
    }
    let daemon = start_daemon_with(
        &config,
        Start {
            log: Some(&log),
            ..Start::default()
        },
    );
    drop_speech(d, &["one"]);
    if mounted.is_some() {
        wait_until("training held for disk space", || {
            said().contains("training is due but waits for disk space")
        });
        assert!(runs(d).is_empty() && !said().contains("training run started"));
        std::fs::remove_file(&ballast).unwrap();
    }
    // The first run fails, the second succeeds; keep_runs = 1 then removes the first.
    let story = || hotfolderd(&["history"], &config);
    wait_until("the failed run's folder removed", || {
        story().contains("training_folder_removed")
    });
    stop(daemon);
    let story = story();
    let left = runs(d);
    assert_eq!(left.len(), 1, "{story}");
    assert_eq!(left[0].1["state"], "succeeded");
    let entries: Vec<_> = std::fs::read_dir(datasets.join("calls/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        story.contains("training_failed") && story.contains("keep_runs = 1: removed"),
        "{story}"
    );
    drop(mounted);
}
