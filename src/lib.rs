//! hotfolderd: turns arriving audio files into transcripts, datasets and model updates.
//! See ARCHITECTURE.md for the flow and the invariants.

pub mod audit;
pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod dataset;
pub mod diarize;
pub mod hash;
pub mod job;
pub mod journal;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod training;
