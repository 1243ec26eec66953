//! Speaker diarization: who spoke when in a one-channel recording. Windows of speech are
//! turned into speaker embeddings, clustered ([`cluster`]), and the clusters' turns label
//! the transcript's words and segments ([`turns`]); [`der`] scores a result against known
//! turns, as the benchmark does.

pub mod campplus;
pub mod cluster;
pub mod der;
pub mod embeddings;
pub mod enroll;
pub mod fbank;
pub mod model;
pub mod names;
pub mod overlap;
pub mod rttm;
pub mod run;
pub mod segmentation;
pub mod turns;
pub mod windows;
