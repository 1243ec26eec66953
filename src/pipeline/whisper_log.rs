//! whisper.cpp's log, routed to `tracing` as whisper-rs routes it, except for the lines
//! whisper.cpp writes when a call is ended on purpose — by [`super::seek`]'s pass gate, or
//! by the abort callback of a job that was cancelled, stopped or timed out: that is normal
//! operation, not the error whisper.cpp calls it.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::sync::Once;

use super::cancel::Cancel;

thread_local! {
    /// The cancel flag of the `whisper_full` call running on this thread, if any.
    static RUNNING: RefCell<Option<Cancel>> = const { RefCell::new(None) };
}

/// While alive, whisper.cpp's failure lines on this thread are expected if `cancel` has
/// stopped (whisper.cpp logs them on the thread that called `whisper_full`).
pub struct Watching(());

pub fn watching(cancel: &Cancel) -> Watching {
    RUNNING.with(|r| *r.borrow_mut() = Some(cancel.clone()));
    Watching(())
}

impl Drop for Watching {
    fn drop(&mut self) {
        RUNNING.with(|r| *r.borrow_mut() = None);
    }
}

fn cancelled_here() -> bool {
    RUNNING.with(|r| r.borrow().as_ref().is_some_and(|c| c.stopped().is_some()))
}

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
        || (is_abort_line(text) && cancelled_here())
}

/// What whisper.cpp says when its abort callback ended a call.
fn is_abort_line(text: &str) -> bool {
    text.contains("failed to encode") || text.contains("failed to decode")
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

    #[test]
    fn a_failure_line_is_expected_only_while_this_threads_call_is_cancelled() {
        let line = "whisper_full_with_state: failed to encode";
        let cancel = crate::pipeline::cancel::Cancel::default();
        let watch = super::watching(&cancel);
        assert!(!super::is_expected(line), "not cancelled");
        cancel.cancel_by_request();
        assert!(super::is_expected(line));
        std::thread::spawn(move || assert!(!super::is_expected(line)))
            .join()
            .unwrap();
        drop(watch);
        assert!(!super::is_expected(line), "the call is over");
    }
}
