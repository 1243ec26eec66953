//! A training run is scored (issue 19): the daemon freezes the held-out split, exports the
//! serving model for the trainer to start from (`HOTFOLDERD_BASE_MODEL`), runs the real
//! recipe (trainers/whisper_finetune.py, two steps on CPU), converts its `output/final` to
//! ggml and scores the serving model and the candidate on the held-out pieces with its own
//! decoder, into `run.json`'s `eval`. The whole loop with a full fine-tune; a LoRA adapter
//! trained on wrong labels is merged, scored worse and not promoted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::common::hook::Hook;
use crate::common::*;
use crate::hf_models::trainer_python;
use hotfolderd::dataset::{manifest, split};
use serde_json::Value;

const SENTENCES: [&str; 8] = [
    "The morning train leaves the station at seven.",
    "Please close the window before the storm arrives.",
    "Our garden grows tomatoes and green beans.",
    "The library opens late on Thursday evenings.",
    "She painted the old fence a bright shade of blue.",
    "Every winter the lake freezes near the shore.",
    "The baker sells fresh bread before sunrise.",
    "A small boat drifted slowly down the river.",
];

/// What a test's dataset is labelled with and how its run trains and promotes.
struct Setup {
    promote: &'static str,
    /// Extra recipe arguments.
    train: &'static str,
    /// The training inputs' corrections: their sentences (right), or nonsense (wrong).
    wrong_labels: bool,
}

fn config(d: &Path, hours: f64, hook: &str, s: &Setup) -> PathBuf {
    let config = d.join("hotfolderd.toml");
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("trainers/whisper_finetune.py");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 2\n\
             [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"500ms\"\n\
             [[dataset]]\nname = \"calls\"\nsources = [{inbox:?}]\npath = {:?}\n\
             train_after_hours = {hours}\nmin_segment_seconds = 0.5\neval_fraction = 0.5\n\
             promote = {:?}\nmin_interval = \"1h\"\n\
             [dataset.trainer]\ncommand = [{:?}, {recipe:?}, \"--batch-size\", \"1\", {}]\n\
             [[notify]]\nkind = \"webhook\"\nurl = {hook:?}\nsecret_file = {:?}\n\
             events = [\"model_promoted\", \"training_finished\"]\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            d.join("out"),
            d.join("datasets/calls"),
            s.promote,
            trainer_python(),
            s.train,
            d.join("webhook.secret"),
        ),
    )
    .unwrap();
    config
}

/// A finished, scored run and what led to it.
struct Scored {
    daemon: Daemon,
    hook: Hook,
    log: PathBuf,
    folder: PathBuf,
    run: Value,
    /// The held-out input first, then the two training inputs.
    inputs: Vec<PathBuf>,
}

/// Three inputs in the dataset (one the content hash holds out, two that train), each
/// corrected by a person, then a restart with a threshold the run crosses at once.
fn scored_run(d: &Path, s: &Setup) -> Scored {
    let (mut held, mut train) = (Vec::new(), Vec::new());
    for (i, text) in SENTENCES.iter().enumerate() {
        let wav = speak(d, &format!("s{i}"), text, "en-us");
        let sha = hotfolderd::hash::sha256_file(&wav).unwrap();
        if split::held_out(&sha, 0.5) {
            held.push((wav, sha, *text));
        } else {
            train.push((wav, sha, *text));
        }
    }
    assert!(!held.is_empty() && train.len() >= 2, "{held:?} {train:?}");
    let chosen: Vec<_> = held[..1].iter().chain(&train[..2]).cloned().collect();

    std::fs::write(d.join("webhook.secret"), "s3cret\n").unwrap();
    let hook = Hook::start();
    let daemon = start_daemon(&config(d, 100.0, &hook.url(), s));
    for (wav, _, _) in &chosen {
        std::fs::copy(wav, d.join("inbox").join(wav.file_name().unwrap())).unwrap();
    }
    let manifest_path = d.join("datasets/calls/manifest.jsonl");
    wait_until("three inputs in the dataset", || {
        manifest::read(&manifest_path).is_ok_and(|c| {
            let shas: std::collections::BTreeSet<_> =
                c.lines.iter().map(|l| l.sha256.clone()).collect();
            shas.len() == 3
        })
    });
    // A person's words for each: the serving model's own cannot score it.
    let corrections = d.join("datasets/calls/corrections");
    for (i, (_, sha, text)) in chosen.iter().enumerate() {
        let said = if s.wrong_labels && i > 0 {
            "banana umbrella seven purple banana umbrella seven purple"
        } else {
            text
        };
        std::fs::write(corrections.join(format!("{sha}.txt")), said).unwrap();
        wait_until("the correction applied", || {
            corrections.join(format!("done/{sha}.txt")).is_file()
        });
    }
    stop(daemon);
    let log = d.join("daemon.log");
    let daemon = start_daemon_with(
        &config(d, 0.0001, &hook.url(), s),
        Start {
            log: Some(&log),
            ..Start::default()
        },
    );
    let runs = d.join("datasets/calls/runs");
    wait_until("a finished run", || {
        std::fs::read_dir(&runs)
            .is_ok_and(|mut e| e.any(|e| e.unwrap().path().join("run.json").is_file()))
    });
    let folder = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("run.json").is_file())
        .unwrap();
    let run: Value =
        serde_json::from_slice(&std::fs::read(folder.join("run.json")).unwrap()).unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(run["state"], "succeeded", "{run}\n{said}");
    println!("eval: {}\npromotion: {}", run["eval"], run["promotion"]);
    Scored {
        daemon,
        hook,
        log,
        folder,
        run,
        inputs: chosen.into_iter().map(|(wav, _, _)| wav).collect(),
    }
}

#[test]
fn a_run_starts_from_the_serving_model_and_is_scored_on_its_held_out_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Scored {
        daemon,
        hook,
        log,
        folder,
        run,
        inputs,
    } = scored_run(
        d,
        &Setup {
            promote: "always",
            train: "\"--max-steps\", \"2\", \"--learning-rate\", \"1e-6\"",
            wrong_labels: false,
        },
    );
    let said = std::fs::read_to_string(&log).unwrap();

    // The trainer started from the serving model, exported once under the dataset.
    let tiny_sha = hotfolderd::hash::sha256_file(&model("tiny.en")).unwrap();
    let base = Path::new(run["base_model"]["path"].as_str().unwrap());
    assert!(base.join("config.json").is_file() && base.join("model.safetensors").is_file());
    assert_eq!(run["base_model"]["model_sha256"], tiny_sha.as_str());
    // The command names no --model: the recipe found it in HOTFOLDERD_BASE_MODEL, or it
    // would have exited with status 2.

    // The held-out input was scored, not trained on.
    let held_out = manifest::read(&folder.join("eval.jsonl")).unwrap().lines;
    let trained = manifest::read(&folder.join("manifest.jsonl"))
        .unwrap()
        .lines;
    let held_sha = hotfolderd::hash::sha256_file(&inputs[0]).unwrap();
    assert!(!held_out.is_empty() && held_out.iter().all(|l| l.sha256 == held_sha));
    assert!(!trained.is_empty() && trained.iter().all(|l| l.sha256 != held_sha));
    let eval = &run["eval"];
    assert_eq!(eval["utterances"], held_out.len(), "{eval}");
    assert_eq!(eval["self_labelled"], 0, "{eval}");
    assert!(eval["error"].is_null(), "{eval}");
    let baseline = &eval["baseline"];
    assert_eq!(baseline["model_sha256"], tiny_sha.as_str());
    let words: usize = held_out
        .iter()
        .map(|l| hotfolderd::training::wer::words(&l.text).len())
        .sum();
    assert_eq!(baseline["reference_words"], words);
    // The person's words for clear speech: tiny.en gets (nearly) all of them.
    assert!(baseline["wer"].as_f64().unwrap() < 0.3, "{eval}");

    // The candidate: the recipe's final model as ggml in the run, scored the same way.
    let candidate = folder.join("candidate.bin");
    assert_eq!(eval["candidate_model"], "candidate.bin");
    assert_eq!(
        eval["candidate"]["model_sha256"],
        hotfolderd::hash::sha256_file(&candidate).unwrap().as_str()
    );
    assert_ne!(eval["candidate"]["model_sha256"], tiny_sha.as_str());
    let wer = eval["candidate"]["wer"].as_f64().unwrap();
    assert!(wer.is_finite() && wer >= 0.0, "{eval}");
    assert!(
        said.contains("run evaluated on its held-out pieces"),
        "{said}"
    );

    // promote = "always": the candidate is registered with its lineage and serves.
    let candidate_sha = eval["candidate"]["model_sha256"].as_str().unwrap();
    assert_eq!(run["promotion"]["promoted"], true, "{run}");
    let config = d.join("hotfolderd.toml");
    let list = || -> Vec<Value> {
        serde_json::from_str(&hotfolderd(&["model", "list", "--json"], &config)).unwrap()
    };
    let models = list();
    assert_eq!(models.len(), 2, "{models:?}");
    assert_eq!(models[0]["sha256"], tiny_sha.as_str());
    assert_eq!(models[0]["state"], "retired");
    let promoted = &models[1];
    assert_eq!(promoted["state"], "serving");
    assert_eq!(promoted["sha256"], candidate_sha);
    assert_eq!(promoted["parent_sha256"], tiny_sha.as_str());
    assert_eq!(promoted["run_id"], run["run_id"]);
    assert_eq!(promoted["dataset"], "calls");
    assert_eq!(promoted["manifest_sha256"], run["manifest_sha256"]);
    assert_eq!(promoted["wer"], eval["candidate"]["wer"]);
    assert_eq!(promoted["id"], run["promotion"]["model_id"]);
    let kept = Path::new(promoted["path"].as_str().unwrap());
    assert_eq!(hotfolderd::hash::sha256_file(kept).unwrap(), candidate_sha);

    // The running daemon swaps it in: the next file's json names it, with no restart.
    let swaps = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("model swapped")
            .count()
    };
    wait_until("the swap", || swaps() == 1);
    assert_eq!(
        transcribed_by(d, "after", "The new model hears this sentence."),
        candidate_sha
    );

    // Rolled back by hand: the model before serves the next file.
    let said = hotfolderd(&["model", "rollback"], &config);
    assert!(said.contains("serves now"), "{said}");
    wait_until("the swap back", || swaps() == 2);
    assert_eq!(
        transcribed_by(d, "back", "The old model hears this one."),
        tiny_sha
    );
    // Each promotion was announced with the model that serves and its lineage.
    let announced = || -> Vec<Value> {
        hook.received()
            .iter()
            .map(|r| r.json())
            .filter(|j| j["event"] == "model_promoted")
            .collect()
    };
    wait_until("two model_promoted notifications", || {
        announced().len() == 2
    });
    let said = announced();
    assert_eq!(said[0]["model"]["sha256"], candidate_sha, "{said:?}");
    assert_eq!(said[0]["model"]["run_id"], run["run_id"]);
    assert_eq!(said[0]["model"]["parent_sha256"], tiny_sha.as_str());
    assert_eq!(said[1]["model"]["sha256"], tiny_sha.as_str());
    // training_finished says where the run's files and its candidate are.
    let finished = hook
        .received()
        .iter()
        .map(|r| r.json())
        .find(|j| j["event"] == "training_finished")
        .unwrap();
    let artifacts = &finished["artifacts"];
    assert_eq!(artifacts["folder"], folder.to_str().unwrap(), "{finished}");
    assert!(artifacts["uri"].is_null());
    for name in ["run.json", "candidate.bin", "eval.jsonl", "manifest.jsonl"] {
        let file = artifacts["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {finished}"));
        let path = folder.join(name);
        assert_eq!(file["path"], path.to_str().unwrap());
        assert_eq!(file["bytes"], std::fs::metadata(&path).unwrap().len());
    }
    assert_eq!(artifacts["candidate_model"]["sha256"], candidate_sha);
    assert_eq!(artifacts["candidate_model"]["id"], 2);
    stop(daemon);
    let states: Vec<Value> = list().iter().map(|m| m["state"].clone()).collect();
    assert_eq!(states, ["serving", "retired"]);
    // status names the serving model and its latest evaluation.
    let status = status(&config);
    let run_id = run["run_id"].as_str().unwrap();
    assert!(
        status.contains(&format!("model serving: #1 {}", &tiny_sha[..12]))
            && status.contains(&format!("latest evaluation: run {run_id} scored it")),
        "{status}"
    );

    // The run and each promotion are in the audit log, in the journal's order...
    audit_matches_journal(d);
    let audit: Vec<Value> = std::fs::read_to_string(d.join("state/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["job_id"].is_null())
        .collect();
    let said: Vec<(&str, &str)> = audit
        .iter()
        .map(|l| (l["event"].as_str().unwrap(), l["key"].as_str().unwrap()))
        .collect();
    let first = said
        .iter()
        .position(|e| *e == ("training_started", run_id))
        .unwrap_or_else(|| panic!("{said:?}"));
    assert_eq!(
        said[first..],
        [
            ("training_started", run_id),
            ("model_registered", candidate_sha),
            ("model_retired", tiny_sha.as_str()),
            ("model_promoted", candidate_sha),
            ("training_succeeded", run_id),
            ("model_retired", candidate_sha),
            ("model_promoted", tiny_sha.as_str()),
        ],
        "{audit:?}"
    );
    assert_eq!(audit[first]["source"], "dataset:calls");
    assert_eq!(audit[first]["run_id"], run_id);
    assert_eq!(audit[first + 3]["model_id"], 2);
    // ... and in `hotfolderd history`: all of them, or one run's.
    let story = hotfolderd(&["history"], &config);
    for said in [
        format!("training_started run {run_id}: dataset calls"),
        format!(
            "model_promoted model 2 ({}): by run {run_id}",
            &candidate_sha[..12]
        ),
        format!("training_succeeded run {run_id}"),
        "model_promoted model 1".to_string(),
        "by `hotfolderd model rollback`".to_string(),
    ] {
        assert!(story.contains(&said), "{said:?} not in:\n{story}");
    }
    let one = hotfolderd(&["history", run_id], &config);
    assert!(
        one.starts_with(&format!("run {run_id} on dataset calls: succeeded"))
            && one.contains("model_registered model 2")
            && !one.contains("model_promoted model 1"),
        "{one}"
    );
}

#[test]
fn a_lora_candidate_trained_on_wrong_labels_is_not_promoted_if_better_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Scored {
        daemon,
        folder,
        run,
        ..
    } = scored_run(
        d,
        &Setup {
            promote: "if_better",
            // A LoRA adapter this time: merged into the exported base, then scored the same way.
            train:
                "\"--max-steps\", \"6\", \"--learning-rate\", \"1e-2\", \"--lora-rank\", \"8\", \
                    \"--lora-targets\", \"q_proj,k_proj,v_proj,out_proj,fc1,fc2\"",
            wrong_labels: true,
        },
    );
    assert!(
        folder.join("output/final/adapter_config.json").is_file(),
        "the trainer left a LoRA adapter: {run}"
    );
    let done = run["metrics"].as_array().unwrap().last().unwrap();
    assert_eq!(done["lora_rank"], 8, "{done}");
    let eval = &run["eval"];
    assert!(eval["error"].is_null(), "both models scored: {eval}");
    let (baseline, candidate) = (
        eval["baseline"]["wer"].as_f64().unwrap(),
        eval["candidate"]["wer"].as_f64().unwrap(),
    );
    eprintln!("LoRA on wrong labels: {eval}");
    assert!(candidate > baseline, "the nonsense made it worse: {eval}");
    assert_ne!(
        eval["candidate"]["model_sha256"], eval["baseline"]["model_sha256"],
        "the adapter changed the weights"
    );
    assert_eq!(run["promotion"]["promoted"], false, "{run}");
    let reason = run["promotion"]["reason"].as_str().unwrap();
    assert!(reason.contains("not better"), "{reason}");
    // Registered as a candidate, with the serving model unchanged: the next file says so.
    let config = d.join("hotfolderd.toml");
    let models: Vec<Value> =
        serde_json::from_str(&hotfolderd(&["model", "list", "--json"], &config)).unwrap();
    let states: Vec<&str> = models
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["serving", "candidate"]);
    assert!(folder.join("candidate.bin").is_file());
    let tiny_sha = hotfolderd::hash::sha256_file(&model("tiny.en")).unwrap();
    assert_eq!(
        transcribed_by(d, "later", "Nothing has changed here."),
        tiny_sha
    );
    stop(daemon);
}
