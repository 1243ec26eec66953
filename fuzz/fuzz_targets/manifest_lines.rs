//! Dataset manifests (JSON lines, appended across crashes): any file content must give
//! good lines plus bad lines with their numbers, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("manifest.jsonl");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(contents) = hotfolderd::dataset::manifest::read(&path) {
        let lines = data.split(|b| *b == b'\n').count();
        for bad in &contents.bad {
            assert!(
                bad.line >= 1 && bad.line <= lines,
                "line {} of {lines}",
                bad.line
            );
        }
        let _ = contents.seconds();
    }
});
