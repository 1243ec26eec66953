//! An input that retention deletes (`keep_done`) leaves the dataset's future manifests: its
//! lines and audio pieces go, its seconds leave the ledger, and its story says so; an input
//! from another folder, kept, stays in the dataset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use crate::common::*;
use hotfolderd::dataset::manifest;

#[test]
fn an_input_retention_deletes_leaves_the_datasets_manifest_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (gone, kept, out) = (d.join("gone"), d.join("kept"), d.join("out"));
    let dataset = d.join("datasets/calls");
    for f in [&gone, &kept, &out] {
        std::fs::create_dir_all(f).unwrap();
    }
    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ncleanup_every = \"1s\"\n[journal]\npath = {:?}\n\
             [asr]\nmodel = {:?}\nthreads = 1\n\
             [[watch]]\npath = {gone:?}\noutput = {out:?}\nstable_for = \"300ms\"\nkeep_done = \"2s\"\n\
             [[watch]]\npath = {kept:?}\noutput = {out:?}\nstable_for = \"300ms\"\n\
             [[dataset]]\nname = \"calls\"\nsources = [{gone:?}, {kept:?}]\npath = {dataset:?}\n\
             train_after_hours = 100.0\nmin_segment_seconds = 0.5\n\
             [dataset.trainer]\ncommand = [\"true\"]\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
        ),
    )
    .unwrap();
    let daemon = start_daemon(&config);
    let wav = |name: &str, text: &str| speak(d, name, text, "en-us");
    let (bye, stay) = (
        wav("bye", "This recording will be deleted after a while."),
        wav("stay", "This recording stays in the dataset for good."),
    );
    let sha = |p: &Path| hotfolderd::hash::sha256_file(p).unwrap();
    let (bye_sha, stay_sha) = (sha(&bye), sha(&stay));
    std::fs::copy(&bye, gone.join("bye.wav")).unwrap();
    std::fs::copy(&stay, kept.join("stay.wav")).unwrap();
    let shas_in_manifest = || -> Vec<String> {
        manifest::read(&dataset.join("manifest.jsonl"))
            .map(|m| m.lines.into_iter().map(|l| l.sha256).collect())
            .unwrap_or_default()
    };
    let story = || {
        hotfolderd(
            &["history", gone.join("done/bye.wav").to_str().unwrap()],
            &config,
        )
    };
    wait_until("the deleted input out of the dataset", || {
        let shas = shas_in_manifest();
        shas.contains(&stay_sha) && !shas.contains(&bye_sha) && story().contains("dataset_removed")
    });
    stop(daemon);

    let story = story();
    assert!(
        story.contains("deleted: retention (keep_done = 2s)")
            && story.contains("taken out of its future manifests"),
        "{story}"
    );
    assert!(!gone.join("done/bye.wav").exists());
    let audio = |sha: &str| -> usize {
        std::fs::read_dir(dataset.join("audio").join(&sha[..2]))
            .map(|e| {
                e.flatten()
                    .filter(|f| f.file_name().to_string_lossy().starts_with(sha))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(audio(&bye_sha), 0);
    assert!(audio(&stay_sha) > 0);
    let left = manifest::read(&dataset.join("manifest.jsonl"))
        .unwrap()
        .lines;
    let seconds: f64 = left.iter().map(|l| l.duration).sum();
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let ledger = j.ledger("calls").unwrap();
    assert!(
        (ledger.total_seconds - seconds).abs() < 1e-6
            && (ledger.new_seconds - seconds).abs() < 1e-6,
        "{ledger:?} against {seconds} s left in the manifest"
    );
}
