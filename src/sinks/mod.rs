//! Where outputs go. Sinks know nothing of where an input came from.
pub mod local;
pub mod s3;
