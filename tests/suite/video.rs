//! Video files (ffmpeg's test picture with a spoken track; mp4, mov, webm, mkv and avi):
//! transcribed from their audio track, the video ignored; in an mkv with an English and a
//! German track, `--audio-track` picks either by language tag or index, and a track that is
//! not there is a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::Value;

fn transcribe(model_name: &str, extra: &[&str], input: &Path, out: &Path) -> std::process::Output {
    transcribe_cli(
        model_name,
        &[&["--format", "json"], extra].concat(),
        input,
        out,
    )
}

fn json_of(out: &Path, stem: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap())
        .unwrap()
}

#[test]
fn video_files_are_transcribed_from_the_audio_track_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let en = speak(
        d,
        "en",
        "The picture is ignored and this sentence is transcribed.",
        "en-us",
    );
    let de = speak(d, "de", "Dies ist die deutsche Tonspur des Films.", "de");
    let picture = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10:duration=6",
    ];
    let make = |name: &str, args: &[&str]| -> PathBuf {
        let out = d.join(name);
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y"]).args(picture);
        cmd.arg("-i")
            .arg(&en)
            .arg("-i")
            .arg(&de)
            .args(args)
            .arg(&out);
        run(&mut cmd);
        out
    };
    let mkv = make(
        "film.mkv",
        &[
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            "-c:v",
            "mpeg4",
            "-c:a",
            "aac",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=ger",
        ],
    );
    let mp4 = make(
        "clip.mp4",
        &["-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-c:a", "aac"],
    );
    let mov = make(
        "clip4.mov",
        &["-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-c:a", "aac"],
    );
    let webm = make(
        "clip2.webm",
        &[
            "-map", "0:v", "-map", "1:a", "-c:v", "libvpx", "-c:a", "libopus",
        ],
    );
    // AVI (symphonia has no demuxer for it: `pipeline::avi`): MP3, as ffmpeg makes it, and
    // a second track in PCM.
    let avi = make(
        "clip3.avi",
        &[
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            "-c:v",
            "mpeg4",
            "-c:a:0",
            "libmp3lame",
            "-c:a:1",
            "pcm_s16le",
        ],
    );
    let out = d.join("out");
    for input in [&mp4, &mov, &webm, &mkv, &avi] {
        let done = transcribe("tiny.en", &[], input, &out);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    for stem in ["clip", "clip4", "clip2", "film", "clip3"] {
        let json = json_of(&out, stem);
        let text = json["text"].as_str().unwrap().to_lowercase();
        assert!(
            text.contains("sentence") && text.contains("transcribed"),
            "{stem}: {text}"
        );
        assert_eq!(json["audio"]["track"], 0, "{stem}");
    }
    assert_eq!(json_of(&out, "film")["audio"]["audio_tracks"], 2);
    let avi_audio = &json_of(&out, "clip3")["audio"];
    assert_eq!(
        (
            &avi_audio["container"],
            &avi_audio["codec"],
            &avi_audio["audio_tracks"]
        ),
        (&"avi".into(), &"mp3".into(), &2.into())
    );

    // The German track, by any form of its language tag or by its index.
    for (i, pick) in ["deu", "1"].iter().enumerate() {
        let out = d.join(format!("de-{i}"));
        let done = transcribe(
            "base",
            &["--audio-track", pick, "--language", "de"],
            &mkv,
            &out,
        );
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let json = json_of(&out, "film");
        assert_eq!(json["audio"]["track"], 1, "{pick}");
        assert_eq!(json["audio"]["track_language"], "ger");
        // (espeak's German through the small base model comes out rough: the track is told
        // apart by what is not in it.)
        let text = json["text"].as_str().unwrap().to_lowercase();
        assert!(
            text.contains("die") && !text.contains("sentence"),
            "{pick}: {text}"
        );
        assert_eq!(json["language"], "de");
    }

    // A film whose default track is in a codec with no decoder here (AC-3): the other
    // track can still be chosen.
    let ac3 = make(
        "dub.mkv",
        &[
            "-map",
            "0:v",
            "-map",
            "2:a",
            "-map",
            "1:a",
            "-c:v",
            "mpeg4",
            "-c:a:0",
            "ac3",
            "-c:a:1",
            "aac",
            "-metadata:s:a:0",
            "language=ger",
            "-metadata:s:a:1",
            "language=eng",
        ],
    );
    let refused = transcribe("tiny.en", &[], &ac3, &d.join("ac3-default"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not supported"));
    let out = d.join("ac3-eng");
    let done = transcribe("tiny.en", &["--audio-track", "eng"], &ac3, &out);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let text = json_of(&out, "dub")["text"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(text.contains("sentence"), "{text}");

    // A track that is not there: which file, what is wrong, and what the file has.
    let done = transcribe("tiny.en", &["--audio-track", "fra"], &mkv, &d.join("none"));
    assert_eq!(done.status.code(), Some(1));
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(
        said.contains("film.mkv") && said.contains("no audio track in language \"fra\""),
        "{said}"
    );
    assert!(said.contains("0 eng (aac), 1 ger (aac)"), "{said}");
}
