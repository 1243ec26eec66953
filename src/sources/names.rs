//! Which names in a watched folder are inputs. Writers use temporary names while a file is
//! incomplete (browsers `*.part`/`*.crdownload`, rsync `.name.XXXXXX`, editors `*~`) and
//! rename it when done; the rename is when it becomes an input.

use std::path::{Component, Path};

/// Why a path under a watched root is not an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A dotfile or inside a dot-directory (this covers rsync's `.name.XXXXXX`).
    Hidden,
    /// A temporary name some writer uses until the file is complete.
    Temporary,
    /// A completion marker (`x.wav.done`), not an input itself.
    Marker,
    /// Inside `done/` or `failed/`, where the daemon itself moves inputs.
    Internal,
}

const TEMP_SUFFIXES: [&str; 8] = [
    ".part",
    ".partial",
    ".tmp",
    ".temp",
    ".crdownload",
    ".download",
    ".swp",
    "~",
];
/// What a media library's inputs are by default (`output = "beside"`): the audio and video
/// files hotfolderd decodes, so posters, `.nfo` files and subtitles are never inputs.
pub const MEDIA_EXTENSIONS: [&str; 18] = [
    // video
    "mkv", "mp4", "m4v", "mov", "webm", "avi", // audio
    "wav", "mp3", "flac", "ogg", "oga", "opus", "m4a", "m4b", "aac", "aif", "aiff", "caf",
];

/// Whether the file name `rel` ends in one of `extensions` (`None`: every name does).
pub fn has_extension(rel: &Path, extensions: Option<&[String]>) -> bool {
    let Some(wanted) = extensions else {
        return true;
    };
    rel.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| wanted.iter().any(|w| w.eq_ignore_ascii_case(e)))
}

pub const DONE_DIR: &str = "done";
pub const FAILED_DIR: &str = "failed";

/// Classifies `rel`, a path relative to the watched root.
pub fn classify(rel: &Path, marker: Option<&str>) -> Result<(), Skip> {
    let mut components = rel.components().peekable();
    let mut first = true;
    while let Some(c) = components.next() {
        let Component::Normal(name) = c else {
            return Err(Skip::Hidden);
        };
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            return Err(Skip::Hidden);
        }
        let is_dir = components.peek().is_some();
        if first && is_dir && (name == DONE_DIR || name == FAILED_DIR) {
            return Err(Skip::Internal);
        }
        first = false;
        if !is_dir {
            let lower = name.to_lowercase();
            if let Some(m) = marker.filter(|m| !m.is_empty()) {
                if lower.ends_with(&m.to_lowercase()) {
                    return Err(Skip::Marker);
                }
            }
            if TEMP_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
                return Err(Skip::Temporary);
            }
        }
    }
    Ok(())
}

/// With a marker configured, the input `x.wav` waits for `x.wav<marker>`; for a marker file,
/// the input it completes.
pub fn marked_input(path: &Path, marker: &str) -> Option<std::path::PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    let stem = name.strip_suffix(marker)?;
    (!stem.is_empty()).then(|| path.with_file_name(stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_names_are_inputs_and_temporary_ones_are_not() {
        for ok in [
            "a.wav",
            "sub/dir/b.mp3",
            "with space/ünïcødé ☃.flac",
            "done.wav",
            "sub/done/x.wav",
        ] {
            assert_eq!(classify(Path::new(ok), None), Ok(()), "{ok}");
        }
        let cases = [
            (".hidden.wav", Skip::Hidden),
            (".talk.wav.Xa8fQ2", Skip::Hidden), // rsync
            ("sub/.cache/a.wav", Skip::Hidden),
            ("talk.wav.part", Skip::Temporary),
            ("talk.WAV.crdownload", Skip::Temporary),
            ("notes.wav~", Skip::Temporary),
            ("x.tmp", Skip::Temporary),
            ("done/a.wav", Skip::Internal),
            ("failed/a.wav", Skip::Internal),
            ("../escape.wav", Skip::Hidden),
        ];
        for (path, why) in cases {
            assert_eq!(classify(Path::new(path), None), Err(why), "{path}");
        }
    }

    #[test]
    fn a_media_library_takes_media_only() {
        let media: Vec<String> = MEDIA_EXTENSIONS.iter().map(|e| e.to_string()).collect();
        for ok in [
            "Films/Movie (2020)/Movie.mkv",
            "a.MP4",
            "show/s01e01.webm",
            "x.avi",
        ] {
            assert!(has_extension(Path::new(ok), Some(&media)), "{ok}");
        }
        for not in [
            "Movie.en.srt",
            "Movie.nfo",
            "poster.jpg",
            "Movie.en.json",
            "README",
        ] {
            assert!(!has_extension(Path::new(not), Some(&media)), "{not}");
        }
        assert!(has_extension(Path::new("README"), None));
    }

    #[test]
    fn markers_complete_inputs() {
        assert_eq!(
            classify(Path::new("x.wav.done"), Some(".done")),
            Err(Skip::Marker)
        );
        assert_eq!(classify(Path::new("x.wav"), Some(".done")), Ok(()));
        assert_eq!(
            marked_input(Path::new("/in/x.wav.done"), ".done"),
            Some("/in/x.wav".into())
        );
        assert_eq!(marked_input(Path::new("/in/.done"), ".done"), None);
        assert_eq!(marked_input(Path::new("/in/x.wav"), ".done"), None);
    }
}
