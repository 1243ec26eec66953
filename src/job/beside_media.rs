//! Outputs beside a media file (`output = "beside"`), named as media servers read them:
//! `movie.en.srt` next to `movie.mkv` (Jellyfin, Plex, Emby and Bazarr match a subtitle by
//! the video's name, then a language tag). Media that already has subtitles in the
//! transcript's language gets none, so a library's own or downloaded subtitles are never
//! written over: a file beside it (`movie.en.srt`, `movie.eng.sdh.srt`,
//! `movie.English.ass`…; a `.forced` one covers only foreign lines and does not count), or
//! a subtitle track inside it tagged with the language (as subgen and Bazarr count them).

use std::path::{Path, PathBuf};

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
    /// Files the daemon wrote for this input before, with when that input finished (ms),
    /// from the journal.
    own: Vec<(PathBuf, i64)>,
}

/// How much later than its input's end an own output's mtime may be (coarse file system
/// clocks); a file written after that is someone else's (Bazarr replaced it).
const OWN_SLACK_MS: i64 = 2_000;

impl BesideMedia {
    pub fn new(stem: PathBuf, media: PathBuf, own: Vec<(String, i64)>) -> BesideMedia {
        BesideMedia {
            stem,
            media,
            own: own
                .into_iter()
                .map(|(p, at)| (PathBuf::from(p), at))
                .collect(),
        }
    }

    /// Whether the file at `path` is one the daemon wrote and nobody has written since.
    fn is_own(&self, path: &Path) -> bool {
        let modified = std::fs::metadata(path).and_then(|m| m.modified());
        let Some(since_epoch) = modified
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        else {
            return false;
        };
        let mtime_ms = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
        self.own
            .iter()
            .any(|(p, at)| p == path && mtime_ms <= at.saturating_add(OWN_SLACK_MS))
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
            is_subtitle_in(name, stem, language) && path.is_file() && !self.is_own(path)
        })
    }
}

/// Tags after the language that say what kind of subtitle it is. `hi` (hearing impaired,
/// Bazarr's) is also Hindi's code: it names a language only as the first tag.
const KIND_TAGS: [&str; 6] = ["hi", "sdh", "cc", "forced", "default", "full"];

/// Whether `name` is a subtitle of the media named `stem` in `language`: `stem.TAGS.EXT`
/// with a subtitle extension, a tag naming the language and none saying `forced`. Names are
/// compared as case-insensitive shares (SMB) see them.
fn is_subtitle_in(name: &str, stem: &str, language: &str) -> bool {
    let same_stem = name
        .get(..stem.len())
        .is_some_and(|n| n.eq_ignore_ascii_case(stem));
    let Some(rest) = name
        .get(stem.len()..)
        .filter(|_| same_stem)
        .and_then(|r| r.strip_prefix('.'))
    else {
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
    let kind = |t: &str| KIND_TAGS.iter().any(|k| k.eq_ignore_ascii_case(t));
    let named = parts
        .iter()
        .enumerate()
        .any(|(i, t)| (i == 0 || !kind(t)) && names_language(t, language));
    !forced && named
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
        // Checked by `declines` a moment ago; this closes most of the gap since.
        if path.exists() && !self.is_own(&path) {
            return Err(Failure::permanent(
                Stage::Write,
                format!(
                    "{} appeared while {} was transcribed; it is left as it is",
                    path.display(),
                    self.media.display()
                ),
            ));
        }
        write_atomic(&path, &bytes).map_err(|e| Failure::transient(Stage::Write, e.to_string()))?;
        Ok(path.display().to_string())
    }

    fn declines(&self, language: &str) -> Option<String> {
        let found = self.existing_subtitles(language)?;
        Some(format!(
            "{} already has subtitles in {language} ({found}); none written (to have them made, move those away and `hotfolderd retry` this input)",
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
        assert!(is_subtitle_in("movie.en.hi.srt", "Movie", "en"), "SMB");
        assert!(
            !is_subtitle_in("Movie.en.hi.srt", "Movie", "hi"),
            "hearing impaired"
        );
        assert!(is_subtitle_in("Movie.hi.srt", "Movie", "hi"), "Hindi");
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
        std::fs::write(&ours, b"1\n").unwrap();
        let finished = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let out = BesideMedia::new(
            dir.path().join("Movie"),
            media.clone(),
            vec![(ours.display().to_string(), finished)],
        );
        assert_eq!(out.path(Format::Srt, "en"), ours);
        assert_eq!(
            out.path(Format::JsonFull, "de"),
            dir.path().join("Movie.de.full.json")
        );
        assert_eq!(out.declines("en"), None, "its own earlier subtitle");
        // Written since its input finished (an upgrade put Bazarr's there): not its own.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        let file = std::fs::File::options().write(true).open(&ours).unwrap();
        file.set_modified(later).unwrap();
        assert!(out.declines("en").unwrap().contains("Movie.en.srt"));
        std::fs::remove_file(&ours).unwrap();
        assert_eq!(out.declines("en"), None);
        std::fs::write(dir.path().join("Movie.eng.sdh.srt"), b"1\n").unwrap();
        let why = out.declines("en").unwrap();
        assert!(why.contains("Movie.eng.sdh.srt"), "{why}");
        assert_eq!(out.declines("de"), None);
    }
}
