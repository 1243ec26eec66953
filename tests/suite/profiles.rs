//! Profiles: each watched folder decodes with its own model, language and options. One
//! daemon serves tiny.en by default, the multilingual base model to a German folder
//! (`[watch.asr]`), and base again, detecting among English and German, to a folder that
//! names `[profiles.either]`; `check-config` shows what each folder decodes with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use crate::common::*;
use serde_json::Value;

fn json_at(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn each_folder_decodes_with_its_own_profile_and_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (tiny, base) = (model("tiny.en"), model("base"));
    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {journal:?}\n\
             [asr]\nmodel = {tiny:?}\nthreads = 1\nbeam_size = 2\nmax_loaded_models = 2\n\
             [[watch]]\npath = {en:?}\noutput = {en_out:?}\nstable_for = \"500ms\"\n\
             [[watch]]\npath = {de:?}\noutput = {de_out:?}\nstable_for = \"500ms\"\n\
             [watch.asr]\nmodel = {base:?}\nlanguage = \"de\"\nformats = [\"json\", \"txt\"]\n\
             [[watch]]\npath = {either:?}\noutput = {either_out:?}\nstable_for = \"500ms\"\n\
             profile = \"either\"\n\
             [profiles.either]\nmodel = {base:?}\nlanguages = [\"en\", \"de\"]\nbeam_size = 1\n\
             formats = [\"json\"]\n",
            journal = d.join("state/journal.sqlite"),
            en = d.join("en"),
            en_out = d.join("en-out"),
            de = d.join("de"),
            de_out = d.join("de-out"),
            either = d.join("either"),
            either_out = d.join("either-out"),
        ),
    )
    .unwrap();
    for f in ["en", "de", "either"] {
        std::fs::create_dir_all(d.join(f)).unwrap();
    }
    let checked = hotfolderd(&["check-config"], &config);
    assert!(
        checked.contains(&format!(
            "{}: model {}, language en, beam 2",
            d.join("en").display(),
            tiny.display()
        )),
        "{checked}"
    );
    assert!(
        checked.contains(&format!(
            "{}: model {}, language de, beam 2",
            d.join("de").display(),
            base.display()
        )) && checked.contains("formats json txt"),
        "{checked}"
    );
    assert!(
        checked.contains("language auto among en, de, beam 1"),
        "{checked}"
    );

    let english = speak(
        d,
        "english",
        "The picture is ignored and this sentence is transcribed.",
        "en-us",
    );
    let german = speak(
        d,
        "german",
        "Ich wohne seit zehn Jahren in einer kleinen Stadt in der Nähe von München.",
        "de",
    );
    let mut daemon = start_daemon(&config);
    std::fs::copy(&english, d.join("en/call.wav")).unwrap();
    std::fs::copy(&german, d.join("de/anruf.wav")).unwrap();
    std::fs::copy(&german, d.join("either/film.wav")).unwrap();
    let outs = [
        d.join("en-out/call.json"),
        d.join("de-out/anruf.json"),
        d.join("either-out/film.json"),
    ];
    wait_until("the three transcripts", || outs.iter().all(|o| o.is_file()));
    signal_daemon(&mut daemon, "TERM");

    let sha = |m: &Path| hotfolderd::hash::sha256_file(m).unwrap();
    let en = json_at(&outs[0]);
    assert_eq!(en["model_sha256"], sha(&tiny));
    assert_eq!(en["language"], "en");
    assert!(
        en["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("sentence"),
        "{en}"
    );
    assert!(d.join("en-out/call.srt").is_file(), "the default formats");

    let de = json_at(&outs[1]);
    assert_eq!(de["model_sha256"], sha(&base));
    assert_eq!(de["language"], "de");
    let text = de["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("stadt") && text.contains("münchen"), "{text}");
    assert!(d.join("de-out/anruf.txt").is_file());
    assert!(
        !d.join("de-out/anruf.srt").exists(),
        "the profile's formats only"
    );

    // Detected, among the two languages the profile allows.
    let either = json_at(&outs[2]);
    assert_eq!(either["model_sha256"], sha(&base));
    assert_eq!(either["language"], "de", "{either}");
}
