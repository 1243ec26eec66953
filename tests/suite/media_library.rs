//! A watched media library (`output = "beside"`): a film gets `NAME.en.srt` next to it; a
//! film that already has English subtitles, beside it or inside it, gets none (known before
//! decoding when the language is set, found after it when detected); posters, `.nfo` files, subtitles and the
//! daemon's own outputs are never inputs; a broken file fails where it lies; and no media
//! file is moved, deleted or changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use hotfolderd::journal::{Journal, State};

/// A video with ffmpeg's test picture and `speech` as its audio track.
fn film(speech: &Path, out: &Path) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=96x64:rate=5:duration=4")
        .arg("-i")
        .arg(speech)
        .args(["-shortest", "-c:v", "mpeg4", "-c:a", "aac"])
        .arg(out);
    run(&mut cmd);
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            (p, (bytes, m.modified().unwrap()))
        })
        .collect()
}

/// The journal's trail of events (event, detail) for `key`, and the transcription result
/// it recorded (none when nothing was decoded).
fn trail(d: &Path, key: &str) -> (Vec<(String, String)>, Option<serde_json::Value>) {
    let j = Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let id = State::ALL
        .iter()
        .flat_map(|s| j.in_state(*s).unwrap())
        .find(|id| j.get(*id).unwrap().unwrap().key == key)
        .unwrap_or_else(|| panic!("{key} is not journaled"));
    let events = j
        .history(id)
        .unwrap()
        .into_iter()
        .map(|(_, e, detail)| (e, detail.unwrap_or_default()))
        .collect();
    (events, j.result(id).unwrap())
}

#[test]
fn a_media_library_gets_subtitles_beside_its_films_and_nothing_else_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let films = d.join("films");
    let shows = d.join("shows");
    let talk = speak(
        d,
        "talk",
        "The picture is ignored and this sentence is transcribed.",
        "en-us",
    );
    film(&talk, &films.join("Talk (2024)/Talk.mkv"));
    film(&talk, &films.join("Other/Other.mp4"));
    film(&talk, &shows.join("Pilot/Pilot.mkv"));
    // English subtitles inside the film: a subtitle track of its own.
    let plain = d.join("plain.mkv");
    film(&talk, &plain);
    let subs = d.join("subs.srt");
    std::fs::write(&subs, "1\n00:00:00,000 --> 00:00:02,000\nhello\n").unwrap();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-i"])
        .arg(&plain)
        .arg("-i")
        .arg(&subs)
        .args(["-map", "0", "-map", "1", "-c", "copy", "-c:s", "srt"])
        .args(["-metadata:s:s:0", "language=eng"])
        .arg(films.join("Dubbed.mkv"));
    run(&mut cmd);
    // Someone else's subtitles, under the names media servers use.
    std::fs::write(
        films.join("Other/Other.eng.sdh.srt"),
        b"1\n00:00:00,000 --> 00:00:01,000\nmine\n",
    )
    .unwrap();
    std::fs::write(
        shows.join("Pilot/Pilot.English.srt"),
        b"1\n00:00:00,000 --> 00:00:01,000\nmine\n",
    )
    .unwrap();
    // Only foreign lines: the film still needs full subtitles.
    std::fs::write(films.join("Talk (2024)/Talk.en.forced.srt"), b"").unwrap();
    // What a library holds besides media.
    std::fs::write(films.join("Talk (2024)/poster.jpg"), b"\xff\xd8\xff").unwrap();
    std::fs::write(films.join("Talk (2024)/Talk.nfo"), b"<movie/>").unwrap();
    std::fs::write(films.join("Broken.avi"), b"RIFF\0\0\0\0AVI not really").unwrap();
    let mut before = snapshot(&films);
    before.extend(snapshot(&shows));

    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\nlanguage = \"en\"\n\
             [[watch]]\npath = {:?}\noutput = \"beside\"\nstable_for = \"500ms\"\n\
             [[watch]]\npath = {:?}\noutput = \"beside\"\nstable_for = \"500ms\"\n\
             [watch.asr]\nlanguage = \"auto\"\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            films,
            shows,
        ),
    )
    .unwrap();
    let checked = hotfolderd(&["check-config"], &config);
    assert!(
        checked.contains("subtitles beside the media") && checked.contains(".mkv"),
        "{checked}"
    );
    let daemon = start_daemon(&config);
    let srt = films.join("Talk (2024)/Talk.en.srt");
    wait_until("the film's subtitles and every input final", || {
        let rows = journal_rows(d);
        srt.is_file()
            && rows.len() == 5
            && rows
                .iter()
                .all(|(_, s, _)| matches!(s, State::Done | State::Failed))
    });
    // A later scan finds nothing new: the srt it wrote is not an input.
    std::thread::sleep(std::time::Duration::from_secs(2));
    stop(daemon);

    let text = std::fs::read_to_string(&srt).unwrap().to_lowercase();
    assert!(
        text.contains("00:00:0") && text.contains("sentence") && text.contains("transcribed"),
        "{text}"
    );
    let mut keys: Vec<(String, State)> = journal_rows(d)
        .into_iter()
        .map(|(k, s, _)| (k, s))
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        keys,
        vec![
            ("Broken.avi".to_string(), State::Failed),
            ("Dubbed.mkv".to_string(), State::Done),
            ("Other/Other.mp4".to_string(), State::Done),
            ("Pilot/Pilot.mkv".to_string(), State::Done),
            ("Talk (2024)/Talk.mkv".to_string(), State::Done),
        ],
        "media only: no poster, nfo, subtitle or own output journaled"
    );
    // Language set: skipped before any decoding (no result recorded).
    let (other, result) = trail(d, "Other/Other.mp4");
    assert!(
        other.iter().any(|(e, why)| e == "done"
            && why.starts_with("skipped: ")
            && why.contains("Other.eng.sdh.srt")),
        "{other:?}"
    );
    assert_eq!(result, None);
    let (dubbed, result) = trail(d, "Dubbed.mkv");
    assert!(
        dubbed.iter().any(|(e, why)| e == "done"
            && why.starts_with("skipped: ")
            && why.contains("subtitle track inside it")),
        "{dubbed:?}"
    );
    assert_eq!(result, None);
    // Language detected: found once the transcript said English.
    let (pilot, result) = trail(d, "Pilot/Pilot.mkv");
    assert!(
        pilot.iter().any(|(e, why)| e == "done"
            && why.starts_with("skipped: ")
            && why.contains("Pilot.English.srt")),
        "{pilot:?}"
    );
    assert_eq!(result.unwrap()["language"], "en");
    let (broken, _) = trail(d, "Broken.avi");
    assert!(broken.iter().any(|(e, _)| e == "failed"), "{broken:?}");

    // Every file the library had is where it was, unchanged; the one new file is the srt.
    let mut after = snapshot(&films);
    after.extend(snapshot(&shows));
    let new: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert_eq!(new, vec![&srt]);
    for (path, was) in &before {
        let now = after.get(path);
        assert!(now == Some(was), "{} was moved or changed", path.display());
    }
    assert!(!films.join("done").exists() && !films.join("failed").exists());

    // Its subtitles moved away, a skipped film is taken again on `retry` while the daemon
    // runs (its file unchanged: no scan would offer it again).
    let sdh = films.join("Other/Other.eng.sdh.srt");
    let aside = d.join("Other.eng.sdh.srt");
    std::fs::rename(&sdh, &aside).unwrap();
    let daemon = start_daemon(&config);
    let other_id = {
        let j = Journal::open(&d.join("state/journal.sqlite")).unwrap();
        j.in_state(State::Done)
            .unwrap()
            .into_iter()
            .find(|id| j.get(*id).unwrap().unwrap().key == "Other/Other.mp4")
            .unwrap()
    };
    let said = hotfolderd(&["retry", &other_id.to_string()], &config);
    assert!(said.contains("re-queued"), "{said}");
    let made = films.join("Other/Other.en.srt");
    wait_until("the retried film's subtitles", || made.is_file());
    stop(daemon);
    let text = std::fs::read_to_string(&made).unwrap().to_lowercase();
    assert!(text.contains("sentence"), "{text}");
    // Put back as it was, for what follows.
    std::fs::remove_file(&made).unwrap();
    std::fs::rename(&aside, &sdh).unwrap();

    // The library turned into a drop folder (outputs elsewhere, after = "move"): films it
    // subtitled or skipped in place stay where they are.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "output = \"beside\"",
        &format!(
            "output = {:?}\nextensions = [\"mkv\", \"mp4\"]",
            d.join("out")
        ),
        1,
    );
    std::fs::write(&config, text).unwrap();
    std::fs::copy(&plain, films.join("New.mkv")).unwrap();
    let daemon = start_daemon(&config);
    // A film new to the journal is an input of the drop folder now, and is moved when done;
    // it arrives in the same scan as the others.
    wait_until("the new film done and moved", || {
        films.join("done/New.mkv").is_file()
    });
    stop(daemon);
    let mut again = snapshot(&films);
    again.extend(snapshot(&shows));
    for (path, was) in &after {
        assert!(
            again.get(path) == Some(was),
            "{} was moved or changed after the switch",
            path.display()
        );
    }
}
