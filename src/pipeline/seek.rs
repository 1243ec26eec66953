//! How a long input is cut into whisper.cpp calls without dropping or repeating speech.
//!
//! whisper decodes 30 s at a time (a *pass*), then seeks: to where the unfinished segment
//! it was decoding began, or past the end of the 30 s when the last segment ended with
//! silence after it. Given a buffer, `whisper_full` runs pass after pass over it; a pass whose
//! 30 s reach past the end of the buffer sees zeros where the audio goes on, and decodes speech
//! that is cut off mid-word as if it had ended (the bug that lost a third of the words of some
//! long files). So a call runs only the passes whose 30 s lie inside its buffer (the first
//! always, as VAD-joined speech that ends at a pause is followed by silence), and the next
//! call starts exactly where whisper would have sought to, carrying the rest of the audio
//! forward, with the text so far as context. Only the call that reaches the end of the input
//! lets whisper.cpp run to the end, as `whisper-cli` does at the end of a file.
//!
//! whisper.cpp does not say where it sought to, but it reports progress (whole percent of the
//! buffer) before each pass, and the segments it found; together they pin the seek down:
//! it is the end of the last segment, the end of the pass's 30 s, or (rarely) a little after
//! the segment's end, inside the reported percent. Where that leaves a doubt, the next call
//! starts at the earliest place it could be, which re-reads a moment of the silence whisper
//! skipped and never skips speech.

use std::cell::Cell;

use super::resample::TARGET_RATE;

/// Samples in one whisper pass (30 s).
pub const CHUNK_SAMPLES: usize = 30 * TARGET_RATE as usize;
/// whisper's timestamps and seeks step in 10 ms frames.
pub const FRAME_SAMPLES: usize = TARGET_RATE as usize / 100;
const CHUNK_FRAMES: i64 = (CHUNK_SAMPLES / FRAME_SAMPLES) as i64;

/// How the audio given to one call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferEnd {
    /// At the end of the input: whisper.cpp runs to the end, as on a whole file.
    Input,
    /// At a pause VAD found (silence follows, as whisper's zero padding says).
    Pause,
    /// Where the audio goes on.
    Cut,
}

/// whisper.cpp's length in frames of a buffer of `samples` (`mel.n_len_org`).
fn whisper_frames(samples: usize) -> i64 {
    1 + (samples as i64 + 200 - 400).max(0) / FRAME_SAMPLES as i64
}

/// `a / b` rounded up, for `a >= 0`, `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// whisper.cpp's progress for a seek of `frame`: whole percent of `n` frames.
fn percent(frame: i64, n: i64) -> i64 {
    100 * frame / n.max(1)
}

/// Where whisper may have sought to after a pass that began at `pass_start`, given the end
/// of the last segment that pass found (if any) and the progress whisper then reported:
/// `(earliest, latest)` frames consistent with both.
pub fn seek_bounds(pass_start: i64, new_end: Option<i64>, progress: i64, n: i64) -> (i64, i64) {
    let n = n.max(1);
    // The frames whisper reports as `progress` percent.
    let lo = ceil_div(progress * n, 100);
    let hi = (ceil_div((progress + 1) * n, 100) - 1).min(n);
    let chunk_end = (pass_start + CHUNK_FRAMES).min(n);
    let candidates = [new_end, Some(chunk_end)];
    let fits = |x: &i64| percent(*x, n) == progress;
    match candidates.iter().flatten().copied().filter(fits).min() {
        // The segment's end or the pass's end; or a little after the segment's end.
        Some(first) => (first, hi.max(first)),
        None => (lo.max(new_end.unwrap_or(pass_start)), hi),
    }
}

/// Follows `whisper_full`'s passes over one buffer through its progress and encoder-begin
/// callbacks, refuses passes that would reach past the buffer, and says where the next call
/// must start.
pub struct SeekTracker {
    len: usize,
    frames: i64,
    end: BufferEnd,
    passes: Cell<usize>,
    pass_start: Cell<i64>,
    segments_before: Cell<i32>,
    progress: Cell<i64>,
    stopped_at: Cell<Option<i64>>,
}

impl SeekTracker {
    pub fn new(len: usize, end: BufferEnd) -> Self {
        SeekTracker {
            len,
            frames: whisper_frames(len),
            end,
            passes: Cell::new(0),
            pass_start: Cell::new(0),
            segments_before: Cell::new(0),
            progress: Cell::new(0),
            stopped_at: Cell::new(None),
        }
    }

    /// Where whisper is now, given its segments so far (count, and the last one's end).
    fn bounds(&self, segments: i32, last_end: Option<i64>) -> (i64, i64) {
        let new_end = last_end.filter(|_| segments > self.segments_before.get());
        seek_bounds(
            self.pass_start.get(),
            new_end,
            self.progress.get(),
            self.frames,
        )
    }

    /// Before each pass: may it run?
    pub fn begin_pass(&self, segments: i32, last_end: Option<i64>) -> bool {
        let n = self.passes.get();
        let (earliest, latest) = if n == 0 {
            (0, 0)
        } else {
            self.bounds(segments, last_end)
        };
        let inside = latest as usize * FRAME_SAMPLES + CHUNK_SAMPLES <= self.len;
        if n > 0 && self.end != BufferEnd::Input && !inside {
            self.stopped_at.set(Some(earliest));
            return false;
        }
        self.passes.set(n + 1);
        self.pass_start.set(earliest);
        self.segments_before.set(segments);
        true
    }

    pub fn set_progress(&self, percent: i64) {
        self.progress.set(percent);
    }

    /// After the call: the sample of this buffer where the next call starts (never 0).
    pub fn resume_at(&self, segments: i32, last_end: Option<i64>) -> usize {
        let frame = match self.stopped_at.get() {
            Some(f) => f,
            None if self.passes.get() == 0 => CHUNK_FRAMES,
            None => self.bounds(segments, last_end).0,
        };
        // whisper itself treats the last 100 ms as done; where the audio goes on, that
        // moment is read again by the next call instead of skipped.
        if frame >= self.frames || (self.end != BufferEnd::Cut && frame + 10 >= self.frames) {
            return self.len;
        }
        (frame.max(1) as usize * FRAME_SAMPLES).min(self.len)
    }
}

/// whisper.cpp's progress callback: `data` is a `&SeekTracker` that outlives the call.
///
/// # Safety
/// `data` must point to a live `SeekTracker` for the whole `whisper_full` call.
pub unsafe extern "C" fn on_progress(
    _ctx: *mut whisper_rs_sys::whisper_context,
    _state: *mut whisper_rs_sys::whisper_state,
    progress: std::ffi::c_int,
    data: *mut std::ffi::c_void,
) {
    // SAFETY: the caller guarantees `data` is a live `SeekTracker`.
    let tracker = unsafe { &*(data.cast::<SeekTracker>()) };
    tracker.set_progress(i64::from(progress));
}

/// whisper.cpp's encoder-begin callback: `data` is a `&SeekTracker` that outlives the call.
///
/// # Safety
/// `data` must point to a live `SeekTracker`, and `state` to the state being decoded.
pub unsafe extern "C" fn on_encoder_begin(
    _ctx: *mut whisper_rs_sys::whisper_context,
    state: *mut whisper_rs_sys::whisper_state,
    data: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: the caller guarantees both pointers; whisper.cpp is between passes here.
    let (tracker, segments, last_end) = unsafe {
        let n = whisper_rs_sys::whisper_full_n_segments_from_state(state);
        let last =
            (n > 0).then(|| whisper_rs_sys::whisper_full_get_segment_t1_from_state(state, n - 1));
        (&*(data.cast::<SeekTracker>()), n, last)
    };
    tracker.begin_pass(segments, last_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: usize = TARGET_RATE as usize;

    #[test]
    fn whisper_counts_frames_as_whisper_cpp_does() {
        assert_eq!(whisper_frames(30 * R), 2999);
        assert_eq!(whisper_frames(120 * R), 11999);
    }

    #[test]
    fn the_seek_is_pinned_down_by_the_progress_reported() {
        let n = 11999; // a 120 s buffer: a percent is 120 frames
                       // Unfinished segment: whisper went back to the last segment's end (27.34 s).
        assert_eq!(seek_bounds(0, Some(2734), percent(2734, n), n).0, 2734);
        // Silence after the last segment: whisper skipped to the end of the 30 s.
        let (lo, hi) = seek_bounds(0, Some(1500), percent(3000, n), n);
        assert_eq!((lo, hi), (3000, 3000_i64.max(hi)));
        assert!(hi < 3120);
        // The two in the same percent: the earlier, so nothing is skipped.
        assert_eq!(seek_bounds(100, Some(3050), percent(3100, n), n).0, 3050);
        // A little after the segment's end, in a later percent: no earlier than that percent.
        let (lo, _) = seek_bounds(0, Some(2500), percent(2700, n), n);
        assert_eq!(lo, ceil_div(percent(2700, n) * n, 100));
        assert!((2500..=2700).contains(&lo));
        // Nothing found: a silent 30 s.
        assert_eq!(seek_bounds(6000, None, percent(9000, n), n).0, 9000);
    }

    #[test]
    fn only_passes_inside_the_buffer_run() {
        // 60 s buffer, the audio goes on.
        let t = SeekTracker::new(60 * R, BufferEnd::Cut);
        let n = whisper_frames(60 * R);
        assert!(t.begin_pass(0, None));
        // First pass ended with an unfinished segment at 26 s: the next 30 s fit.
        t.set_progress(percent(2600, n));
        assert!(t.begin_pass(3, Some(2600)));
        // Second pass: seek 50 s; 50 + 30 > 60: refused, resume there.
        t.set_progress(percent(5000, n));
        assert!(!t.begin_pass(6, Some(5000)));
        assert_eq!(t.resume_at(6, Some(5000)), 50 * R);
    }

    #[test]
    fn the_first_pass_always_runs_and_the_last_buffer_runs_to_its_end() {
        let t = SeekTracker::new(20 * R, BufferEnd::Pause);
        assert!(t.begin_pass(0, None));
        // whisper skipped to the end of the buffer and stopped by itself.
        t.set_progress(100);
        assert_eq!(t.resume_at(2, Some(1500)), 20 * R);
        let t = SeekTracker::new(100 * R, BufferEnd::Input);
        assert!(t.begin_pass(0, None));
        t.set_progress(percent(9000, whisper_frames(100 * R)));
        assert!(t.begin_pass(4, Some(9000)));
    }

    #[test]
    fn a_call_that_found_nothing_moves_on_by_a_silent_pass() {
        let t = SeekTracker::new(90 * R, BufferEnd::Cut);
        let n = whisper_frames(90 * R);
        assert!(t.begin_pass(0, None));
        t.set_progress(percent(3000, n));
        // 30 + 30 <= 90 s: allowed; nothing again; 60 + 30 may not fit: resume at 60 s.
        assert!(t.begin_pass(0, None));
        t.set_progress(percent(6000, n));
        assert!(!t.begin_pass(0, None));
        assert_eq!(t.resume_at(0, None), 60 * R);
        // A buffer that whisper finishes by itself.
        let t = SeekTracker::new(30 * R, BufferEnd::Cut);
        assert!(t.begin_pass(0, None));
        t.set_progress(100);
        assert_eq!(t.resume_at(0, None), 30 * R);
    }

    /// whisper takes a seek within 100 ms of its buffer's end as the end of the audio; where
    /// the audio goes on, the next call reads that moment again (it was skipped).
    #[test]
    fn the_last_100_ms_of_a_cut_buffer_are_read_again() {
        let n = whisper_frames(30 * R);
        let t = SeekTracker::new(30 * R, BufferEnd::Cut);
        assert!(t.begin_pass(0, None));
        t.set_progress(percent(n - 4, n));
        assert_eq!(
            t.resume_at(5, Some(n - 4)),
            (n - 4) as usize * FRAME_SAMPLES
        );
        // At a pause, that moment is silence: done.
        let t = SeekTracker::new(30 * R, BufferEnd::Pause);
        assert!(t.begin_pass(0, None));
        t.set_progress(percent(n - 4, n));
        assert_eq!(t.resume_at(5, Some(n - 4)), 30 * R);
    }
}
