//! The trainer's metrics.jsonl (written by a user's program): any text gives the objects
//! it holds, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for m in hotfolderd::training::run::parse_metrics(&text) {
        assert!(m.is_object());
    }
});
