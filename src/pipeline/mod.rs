//! Pipeline stages over one input: decode → transcribe → render.
pub mod audio_track;
pub mod cancel;
pub mod decode;
pub mod fallback;
pub mod idle_model;
pub mod languages;
pub mod render;
pub mod render_cli;
pub mod resample;
pub mod seek;
pub mod subtitles;
pub mod transcribe;
pub mod transcript;
pub mod vad;
pub mod vad_model;
pub mod whisper_log;
