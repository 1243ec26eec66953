//! The configuration file: any text must parse and validate to a config or to located
//! errors, never a panic (spans must stay inside the text).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(errors) = hotfolderd::config::Config::parse(text, "fuzz.toml", |_| None) {
            for e in errors {
                let _ = e.to_string();
            }
        }
    }
});
