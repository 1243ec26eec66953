//! Sources discover inputs and hand over candidates; they never transcribe.
pub mod fs;
pub mod names;
pub mod s3_body;
pub mod s3_event;
pub mod sqs;
pub mod stability;
