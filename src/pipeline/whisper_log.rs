//! whisper.cpp's log, routed to `tracing` as whisper-rs routes it, except for the line
//! whisper.cpp writes when [`super::seek`]'s pass gate ends a call on purpose: that is
//! normal operation, not the error whisper.cpp calls it.

use std::ffi::{c_char, c_void, CStr};
use std::sync::Once;

use whisper_rs_sys::{
    ggml_log_level, ggml_log_level_GGML_LOG_LEVEL_DEBUG, ggml_log_level_GGML_LOG_LEVEL_ERROR,
    ggml_log_level_GGML_LOG_LEVEL_INFO, ggml_log_level_GGML_LOG_LEVEL_WARN,
};

/// Installs the hooks once per process (whisper-rs's for ggml, ours for whisper).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        whisper_rs::install_logging_hooks();
        // SAFETY: `forward` is a plain function that only reads the C string it is given.
        unsafe { whisper_rs_sys::whisper_log_set(Some(forward), std::ptr::null_mut()) };
    });
}

/// Lines that describe our own, deliberate use of whisper.cpp.
fn is_expected(text: &str) -> bool {
    text.contains("encoder_begin_callback returned false")
}

unsafe extern "C" fn forward(level: ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: whisper.cpp passes a NUL-terminated string valid for this call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    const TARGET: &str = "whisper_cpp";
    match level {
        _ if is_expected(text) => tracing::debug!(target: TARGET, "{text}"),
        l if l == ggml_log_level_GGML_LOG_LEVEL_ERROR => tracing::error!(target: TARGET, "{text}"),
        l if l == ggml_log_level_GGML_LOG_LEVEL_WARN => tracing::warn!(target: TARGET, "{text}"),
        l if l == ggml_log_level_GGML_LOG_LEVEL_INFO => tracing::info!(target: TARGET, "{text}"),
        l if l == ggml_log_level_GGML_LOG_LEVEL_DEBUG => tracing::debug!(target: TARGET, "{text}"),
        _ => tracing::trace!(target: TARGET, "{text}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pass_gate_line_is_expected() {
        assert!(super::is_expected(
            "whisper_full_with_state: encoder_begin_callback returned false - aborting"
        ));
        assert!(!super::is_expected(
            "whisper_full_with_state: failed to encode"
        ));
    }
}
