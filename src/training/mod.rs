//! Training runs: when a dataset's new hours cross its threshold, its trainer runs under
//! supervision and its record and artifacts land in the dataset's folder.

pub mod eval;
pub mod gpu;
pub mod lease;
pub mod promote;
pub mod prune;
pub mod run;
pub mod wer;
