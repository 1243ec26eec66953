//! A PyTorch checkpoint given to `hotfolderd model import-speaker` is untrusted input:
//! a hostile zip, pickle, shape or stride must give an error, not a huge allocation, an
//! overflow or an out-of-bounds read.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("model.pt");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = hotfolderd::model::torch_pt::read_state_dict(&path);
});
