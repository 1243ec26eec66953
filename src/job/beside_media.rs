//! Outputs beside a media file (`output = "beside"`), named as media servers read them:
//! `movie.en.srt` next to `movie.mkv` (Jellyfin, Plex, Emby and Bazarr match a subtitle by
//! the video's name, then a language tag). Media that already has subtitles in the
//! transcript's language gets none, so a library's own or downloaded subtitles are never
//! written over: a file beside it (`movie.en.srt`, `movie.eng.sdh.srt`,
//! `movie.English.ass`…; a `.forced` one covers only foreign lines and does not count), or
//! a subtitle track inside it tagged with the language (as subgen and Bazarr count them).

use std::path::PathBuf;

use super::failure::{Failure, Stage};
use super::output::{Output, Placed};
use crate::pipeline::audio_track::same_language;
use crate::pipeline::render::Format;
use crate::sinks::local::write_atomic;

/// Extensions of the subtitle files media servers read beside a video.
const SUBTITLE_EXTENSIONS: [&str; 8] = ["srt", "vtt", "ass", "ssa", "sub", "idx", "sup", "smi"];

pub struct BesideMedia {
    /// `<dir>/<output name>`, to which `.<language>.<format>` is appended.
    stem: PathBuf,
    /// The media file.
    media: PathBuf,
    /// Files the daemon wrote for this input before (from the journal): its own.
    own: Vec<PathBuf>,
}

impl BesideMedia {
    pub fn new(stem: PathBuf, media: PathBuf, own: Vec<String>) -> BesideMedia {
        BesideMedia {
            stem,
            media,
            own: own.into_iter().map(PathBuf::from).collect(),
        }
    }

    pub fn path(&self, format: Format, language: &str) -> PathBuf {
        let mut path = self.stem.as_os_str().to_owned();
        path.push(format!(".{language}.{}", format.extension()));
        PathBuf::from(path)
    }

    /// The subtitles in `language` the media already has: a file beside it that the daemon
    /// did not write, or a subtitle track inside it.
    fn existing_subtitles(&self, language: &str) -> Option<String> {
        if let Some(file) = self.subtitle_file(language) {
            return Some(file.display().to_string());
        }
        crate::pipeline::decode::subtitle_track_languages(&self.media)
            .into_iter()
            .find(|tag| names_language(tag, language))
            .map(|tag| format!("a subtitle track inside it, tagged {tag:?}"))
    }

    /// A subtitle beside the media in `language` that the daemon did not write.
    fn subtitle_file(&self, language: &str) -> Option<PathBuf> {
        let dir = self.media.parent()?;
        let stem = self.media.file_stem()?.to_str()?;
        let entries = std::fs::read_dir(dir).ok()?;
        entries.flatten().map(|e| e.path()).find(|path| {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                return false;
            };
            is_subtitle_in(name, stem, language) && !self.own.contains(path) && path.is_file()
        })
    }
}

/// Whether `name` is a subtitle of the media named `stem` in `language`: `stem.TAGS.EXT`
/// with a subtitle extension, one tag naming the language and none saying `forced`.
fn is_subtitle_in(name: &str, stem: &str, language: &str) -> bool {
    let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    let mut parts: Vec<&str> = rest.split('.').collect();
    let Some(ext) = parts.pop() else {
        return false;
    };
    if !SUBTITLE_EXTENSIONS
        .iter()
        .any(|e| e.eq_ignore_ascii_case(ext))
    {
        return false;
    }
    let forced = parts.iter().any(|t| t.eq_ignore_ascii_case("forced"));
    !forced && parts.iter().any(|t| names_language(t, language))
}

/// Whether a file name's tag names `language` (a Whisper code): as an ISO 639 code (`en`,
/// `eng`, `en-US`) or by its English name (`English`), as media servers accept.
fn names_language(tag: &str, language: &str) -> bool {
    if same_language(tag, language) {
        return true;
    }
    whisper_rs::get_lang_id(language)
        .and_then(whisper_rs::get_lang_str_full)
        .is_some_and(|full| full.eq_ignore_ascii_case(tag))
}

impl Output for BesideMedia {
    async fn put(
        &self,
        format: Format,
        bytes: Vec<u8>,
        placed: &Placed<'_>,
    ) -> Result<String, Failure> {
        let path = self.path(format, placed.language);
        write_atomic(&path, &bytes).map_err(|e| Failure::transient(Stage::Write, e.to_string()))?;
        Ok(path.display().to_string())
    }

    fn declines(&self, language: &str) -> Option<String> {
        let found = self.existing_subtitles(language)?;
        Some(format!(
            "{} already has subtitles in {language} ({found}); none written",
            self.media.display(),
        ))
    }

    /// Always transcribed: a twin's subtitles lie beside another file, in whatever
    /// language it had.
    async fn reuse(
        &self,
        _formats: &[Format],
        _twin: &[String],
        _input: &str,
        _sha256: &str,
    ) -> Option<Result<Vec<String>, Failure>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtitles_in_the_language_are_recognised_by_code_or_name() {
        for name in [
            "Movie.en.srt",
            "Movie.eng.srt",
            "Movie.EN.sdh.srt",
            "Movie.English.ass",
            "Movie.en-US.vtt",
            "Movie.default.en.srt",
        ] {
            assert!(is_subtitle_in(name, "Movie", "en"), "{name}");
        }
        for name in [
            "Movie.en.forced.srt",
            "Movie.de.srt",
            "Movie.srt",
            "Movie.en.nfo",
            "Movie 2.en.srt",
            "Movie.mkv",
        ] {
            assert!(!is_subtitle_in(name, "Movie", "en"), "{name}");
        }
        assert!(is_subtitle_in("Film.ger.srt", "Film", "de"));
        assert!(is_subtitle_in("Film.German.srt", "Film", "de"));
    }

    #[test]
    fn outputs_are_named_for_media_servers_and_only_others_subtitles_decline() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("Movie.mkv");
        std::fs::write(&media, b"x").unwrap();
        let ours = dir.path().join("Movie.en.srt");
        let out = BesideMedia::new(
            dir.path().join("Movie"),
            media.clone(),
            vec![ours.display().to_string()],
        );
        assert_eq!(out.path(Format::Srt, "en"), ours);
        assert_eq!(
            out.path(Format::JsonFull, "de"),
            dir.path().join("Movie.de.full.json")
        );
        std::fs::write(&ours, b"1\n").unwrap();
        assert_eq!(out.declines("en"), None, "its own earlier subtitle");
        std::fs::write(dir.path().join("Movie.eng.sdh.srt"), b"1\n").unwrap();
        let why = out.declines("en").unwrap();
        assert!(why.contains("Movie.eng.sdh.srt"), "{why}");
        assert_eq!(out.declines("de"), None);
    }
}
