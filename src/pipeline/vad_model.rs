//! Finding the Silero VAD model, so that VAD is never off without saying so. Setup imports it
//! beside the Whisper model (`var/models/`); the Debian package installs it in
//! `/usr/share/hotfolderd/models/`, and admins import models into `/var/lib/hotfolderd/models/`.

use std::path::{Path, PathBuf};

/// The file name setup, the package and `hotfolderd model import-silero` docs use.
pub const FILE_NAME: &str = "ggml-silero-vad.bin";
/// The models folders looked in after the Whisper model's own.
pub const MODEL_FOLDERS: [&str; 2] = ["/var/lib/hotfolderd/models", "/usr/share/hotfolderd/models"];

/// Where a run looks for the VAD model, in order: beside the Whisper model, then the models
/// folders.
pub fn candidates(whisper_model: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = whisper_model.parent() {
        out.push(dir.join(FILE_NAME));
    }
    out.extend(MODEL_FOLDERS.iter().map(|d| Path::new(d).join(FILE_NAME)));
    out.dedup();
    out
}

/// The first candidate that is a file.
pub fn find(whisper_model: &Path) -> Option<PathBuf> {
    candidates(whisper_model).into_iter().find(|p| p.is_file())
}

#[derive(Debug, thiserror::Error)]
pub enum VadModelError {
    /// `absolute` is the path as looked up: a relative one is taken from the working
    /// directory (the service runs in `/`), which the message shows.
    #[error(
        "VAD model {} not found{}: import it with `hotfolderd model import-silero \
         silero_vad_16k.safetensors --out {}` (the file is in PyPI's silero-vad wheel; \
         scripts/fetch-model.sh silero-vad BINARY does both), or turn VAD off",
        .path.display(),
        relative_note(.path, .absolute),
        .absolute.display()
    )]
    Missing { path: PathBuf, absolute: PathBuf },
}

fn relative_note(path: &Path, absolute: &Path) -> String {
    if path.is_relative() {
        format!(
            " (a relative path, taken from the working directory: {})",
            absolute.display()
        )
    } else {
        String::new()
    }
}

/// A configured model must exist.
pub fn check(path: &Path) -> Result<PathBuf, VadModelError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(VadModelError::Missing {
            path: path.to_path_buf(),
            absolute: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        })
    }
}

/// What to say, once, when VAD is wanted but no model was found.
pub fn not_found(whisper_model: &Path) -> String {
    let candidates = candidates(whisper_model);
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    format!(
        "no VAD model found (looked for {}): transcribing without VAD, so silence and noise \
         are decoded too. Import it beside the model with `scripts/fetch-model.sh silero-vad \
         BINARY` or `hotfolderd model import-silero silero_vad_16k.safetensors --out {}`; \
         turn VAD off explicitly to silence this",
        looked.join(", "),
        candidates
            .first()
            .map_or_else(|| FILE_NAME.to_string(), |p| p.display().to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_beside_the_whisper_model_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let whisper = dir.path().join("ggml-tiny.en.bin");
        let c = candidates(&whisper);
        assert_eq!(c[0], dir.path().join(FILE_NAME));
        assert_eq!(
            c[1],
            Path::new("/var/lib/hotfolderd/models").join(FILE_NAME)
        );
        assert!(find(&whisper).is_none_or(|p| p != c[0]));
        std::fs::write(&c[0], b"x").unwrap();
        assert_eq!(find(&whisper), Some(c[0].clone()));
        assert!(check(&dir.path().join("nope.bin")).is_err());
        assert!(not_found(&whisper).contains(&c[0].display().to_string()));
    }

    /// check-config runs wherever the admin's shell is, the service in `/`: a relative
    /// path's error says which file was looked for.
    #[test]
    fn a_missing_relative_model_is_named_with_its_absolute_path() {
        let e = check(Path::new("no/such/vad.bin")).unwrap_err().to_string();
        let absolute = std::env::current_dir().unwrap().join("no/such/vad.bin");
        assert!(e.contains("VAD model no/such/vad.bin not found"), "{e}");
        assert!(e.contains(&absolute.display().to_string()), "{e}");
        assert!(e.contains("working directory"), "{e}");
        let e = check(Path::new("/no/such/vad.bin"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("working directory"), "{e}");
    }
}
