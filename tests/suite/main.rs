//! The integration tests, as one test binary: each module was its own binary once, and
//! ~35 copies of a statically linked daemon (AWS SDKs, whisper.cpp) filled a CI disk.
//! Run one area with `cargo test --test suite <module>::`, e.g. `cargo test --test suite crash::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod api;
mod async_runtime;
mod bad_input;
mod cancel;
mod channels;
mod check_config;
mod crash;
mod daemon;
mod daemon_inputs;
mod daemon_work;
mod dashboard;
mod dataset_removal;
mod diarization;
mod disk_floor;
mod evaluation;
mod fallback;
mod formats;
mod fs_source;
mod gpu;
mod hf_models;
mod history;
mod http;
mod idle_unload;
mod labels;
mod languages;
mod logging;
mod long_form;
mod media_library;
mod models;
mod non_speech;
mod notify;
mod one_path;
mod output_formats;
mod package;
mod profiles;
mod registry;
mod reload;
mod retention;
mod s3;
mod s3_delivery;
mod s3_outage;
mod s3_scale;
mod s3_sink;
mod soak;
mod systemd_notify;
mod systemd_unit;
mod training;
mod training_boxes;
mod training_s3;
mod video;
mod word_times;
