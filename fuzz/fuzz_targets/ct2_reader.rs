//! A CTranslate2 model.bin is untrusted input: hostile sizes and counts must give an error,
//! not a huge allocation or an out-of-bounds read. Every variable named is read.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("model.bin"), data).is_err() {
        return;
    }
    if let Ok(mut model) = hotfolderd::model::ct2::Ct2Model::open_dir(dir.path()) {
        let names: Vec<String> = model.names().map(str::to_string).collect();
        for name in names {
            let _ = model.dims(&name);
            let _ = model.read_f32(&name);
            let _ = model.read_scalar_int(&name);
        }
    }
});
