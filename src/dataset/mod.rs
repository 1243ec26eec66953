//! Datasets: training segments cut from transcripts, a manifest, and the hours ledger.

pub mod correct;
pub mod correction;
pub mod cut;
pub mod feed;
pub mod forget;
pub mod manifest;
pub mod pcm;
pub mod s3_sync;
pub mod shard;
pub mod split;
pub mod teacher;

pub use feed::{Dataset, DatasetError, Feed, Labelled};
