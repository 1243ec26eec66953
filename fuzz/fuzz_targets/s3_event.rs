//! S3 event bodies as SQS delivers them (S3 direct, SNS envelope, EventBridge): any text
//! must give a parsed body or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hotfolderd::sources::s3_event::parse_body(text);
    }
});
