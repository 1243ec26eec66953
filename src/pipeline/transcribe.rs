//! Speech recognition with whisper.cpp (whisper-rs). The model is loaded once and shared;
//! each transcription has its own state. Audio is pulled window by window (never the whole
//! file), with the text of each window given as context to the next and timestamps shifted
//! by the window's position, so long inputs use bounded memory and keep correct times.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::cancel::{Cancel, Stopped};
use super::decode::DecodeError;
use super::fallback;
use super::languages::{self, SpanLanguages};
use super::resample::TARGET_RATE;
use super::seek::{self, BufferEnd, SeekTracker, CHUNK_SAMPLES};
use super::transcript::{
    compression_ratio, is_non_speech_annotation, push_in_order, words_from_tokens, Segment, Token,
    Transcript,
};
use super::vad::{Joined, SpeechMap, Vad, LOOKAHEAD};

/// Audio in 16 kHz mono f32, pulled in pieces.
pub trait AudioSource {
    /// Appends up to `max` samples to `out`; returns how many (0 = end).
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize, DecodeError>;
}

impl AudioSource for super::decode::AudioDecoder16k {
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize, DecodeError> {
        super::decode::AudioDecoder16k::read(self, out, max)
    }
}

/// How much of whisper's 30 s encoder context a short input gets.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum AudioCtx {
    /// Always the full 1500 positions (30 s), as the model was trained: most accurate.
    #[default]
    Full,
    /// An input that fits in one window gets only the positions its audio needs, plus a
    /// margin. The encoder is most of the cost of a short clip, so this is several times
    /// faster on them; measured on 14 espeak phrases of 1–13 s (tiny.en): 4.7× faster,
    /// WER 13.0 % → 14.1 %.
    Fit,
}

/// Encoder positions per second of audio (whisper: 1500 per 30 s).
const CTX_PER_SECOND: usize = 50;
/// Positions added after the audio when fitting the context, and the rounding step.
const CTX_MARGIN: usize = 64;

/// The encoder context for a single-window input of `samples` (16 kHz), when fitted.
fn fitted_audio_ctx(samples: usize) -> Option<i32> {
    let positions = (samples * CTX_PER_SECOND).div_ceil(TARGET_RATE as usize) + CTX_MARGIN;
    let ctx = positions.div_ceil(CTX_MARGIN) * CTX_MARGIN;
    (ctx < 1500).then_some(ctx as i32)
}

/// Decoding options, named and defaulted as whisper.cpp's `whisper-cli` names them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecodeOptions {
    pub threads: i32,
    /// `"auto"` detects the language once, from the start of the input.
    pub language: String,
    /// With `"auto"`: the languages detection may choose from (empty: any). Left out of
    /// the serialized options while empty, as below.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// With `"auto"`: detect the language of each stretch of speech, not once per input
    /// (`languages.rs`). Left out of the serialized options while off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub language_per_segment: bool,
    pub translate: bool,
    pub beam_size: i32,
    pub best_of: i32,
    pub temperature: f32,
    pub temperature_inc: f32,
    pub entropy_thold: f32,
    pub logprob_thold: f32,
    pub no_speech_thold: f32,
    pub no_timestamps: bool,
    pub max_context: i32,
    pub prompt: Option<String>,
    pub suppress_nst: bool,
    /// Keep segments that are only annotations like `[BLANK_AUDIO]` (dropped by default).
    pub keep_annotations: bool,
    /// Silero VAD model: when set, non-speech is skipped before decoding.
    pub vad_model: Option<PathBuf>,
    pub vad: VadOptions,
    /// Seconds of audio given to whisper.cpp per call (memory grows with it).
    pub window_seconds: usize,
    /// Encoder context for an input shorter than one window.
    pub audio_ctx: AudioCtx,
    /// How srt and vtt cues are cut and laid out. (Left out of the serialized options,
    /// and so of the dedup scope, while it is the default: outputs made before it existed
    /// still count.)
    #[serde(skip_serializing_if = "super::subtitles::Layout::is_default")]
    pub subtitles: super::subtitles::Layout,
    /// Which audio track is transcribed (left out while it is the default, as above).
    #[serde(skip_serializing_if = "super::audio_track::AudioTrack::is_default")]
    pub audio_track: super::audio_track::AudioTrack,
    /// Channels mixed, or transcribed one by one (left out while mixed, as above).
    #[serde(skip_serializing_if = "super::channels::Channels::is_default")]
    pub channels: super::channels::Channels,
    /// The speakers of channels 0 and 1 when split (e.g. "agent", "customer").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel_names: Vec<String>,
    /// Word times by DTW (the model was loaded with `ModelOptions::dtw`; left out while off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dtw: bool,
    /// Who spoke when: set to diarize the transcript (left out while off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diarize: Option<crate::diarize::run::DiarizeOptions>,
    /// Deadline and stop flag for this run (not an option a user sets per file).
    #[serde(skip)]
    pub cancel: Cancel,
    /// How far this run is (read by whoever shows it; not an option either).
    #[serde(skip)]
    pub progress: super::progress::Progress,
}

/// whisper.cpp's VAD settings, with whisper-cli's defaults except the padding.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VadOptions {
    pub threshold: f32,
    pub min_speech_duration_ms: i32,
    pub min_silence_duration_ms: i32,
    pub max_speech_duration_s: f32,
    pub speech_pad_ms: i32,
    pub samples_overlap: f32,
}

/// Audio kept around each stretch of speech VAD finds. whisper-cli's 30 ms cut into first
/// words: "Hello from the hot folder." (2 s) came out as "below from the heart folder.", and
/// the long test speech (tests/suite/long_form.rs) had WER 0.103; 100 ms gave the right
/// phrase and 0.074 (200 ms: 0.115). faster-whisper pads by 400 ms.
pub const DEFAULT_SPEECH_PAD_MS: i32 = 100;

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            threshold: 0.5,
            min_speech_duration_ms: 250,
            min_silence_duration_ms: 100,
            max_speech_duration_s: f32::MAX,
            speech_pad_ms: DEFAULT_SPEECH_PAD_MS,
            samples_overlap: 0.1,
        }
    }
}

impl DecodeOptions {
    /// The language the transcript will be in, where the options already say (translation
    /// is into English; a set language is kept); `None` when it is detected.
    pub fn known_language(&self) -> Option<&str> {
        if self.translate {
            Some("en")
        } else {
            Some(self.language.trim()).filter(|l| !l.is_empty() && *l != "auto")
        }
    }
}

impl Default for DecodeOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        DecodeOptions {
            threads: cores.min(4) as i32,
            language: "en".into(),
            languages: Vec::new(),
            language_per_segment: false,
            translate: false,
            beam_size: 5,
            best_of: 5,
            temperature: 0.0,
            temperature_inc: 0.2,
            entropy_thold: 2.4,
            logprob_thold: -1.0,
            no_speech_thold: 0.6,
            no_timestamps: false,
            max_context: -1,
            prompt: None,
            suppress_nst: false,
            keep_annotations: false,
            vad_model: None,
            vad: VadOptions::default(),
            window_seconds: WINDOW_SECONDS,
            audio_ctx: AudioCtx::Full,
            subtitles: super::subtitles::Layout::default(),
            audio_track: super::audio_track::AudioTrack::Default,
            channels: super::channels::Channels::Mix,
            channel_names: Vec::new(),
            dtw: false,
            diarize: None,
            cancel: Cancel::default(),
            progress: super::progress::Progress::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("{0}")]
    Options(String),
    #[error("speech recognition failed: {0}")]
    Asr(String),
    #[error("transcription {0}")]
    Stopped(Stopped),
}

/// Turns audio into a transcript. The real one is [`WhisperTranscriber`]; tests of the code
/// around it may use a stub.
pub trait Transcriber: Send + Sync {
    fn transcribe(
        &self,
        audio: &mut dyn AudioSource,
        opts: &DecodeOptions,
    ) -> Result<Transcript, TranscribeError>;
    fn model_name(&self) -> String;
    /// Drops the weights if unused for long enough (an `[asr] idle_unload` model); whether
    /// it did.
    fn unload_if_idle(&self) -> bool {
        false
    }
    /// Drops the weights now if no transcription is using them (an exclusive training run
    /// takes the GPU); whether they are out of memory now. A model that cannot unload: false.
    fn unload_now(&self) -> bool {
        false
    }
    /// Loads the weights again if they were dropped.
    fn preload(&self) -> Result<(), TranscribeError> {
        Ok(())
    }
}

/// Runs a transcription on tokio's blocking pool, so async code (sources, HTTP, heartbeats)
/// keeps running while whisper.cpp computes.
pub async fn transcribe_blocking(
    transcriber: Arc<dyn Transcriber>,
    mut audio: Box<dyn AudioSource + Send>,
    opts: DecodeOptions,
) -> Result<Transcript, TranscribeError> {
    tokio::task::spawn_blocking(move || transcriber.transcribe(audio.as_mut(), &opts))
        .await
        .map_err(|e| TranscribeError::Asr(format!("transcription task ended abnormally: {e}")))?
}

/// Seconds of audio read ahead (× [`LOOKAHEAD`] with VAD, to find 30 s of speech): memory is
/// bounded by this, not by the input's length. Each whisper.cpp call decodes 30 s of it (see
/// [`super::seek`]), so the transcript is the same at any window length.
pub const WINDOW_SECONDS: usize = 30;
/// Whisper decodes 30 s at a time; shorter windows would waste most of each encoder pass.
pub const MIN_WINDOW_SECONDS: usize = 30;
/// Tokens of text context whisper.cpp carries from one pass to the next (half the decoder's).
const MAX_TEXT_CONTEXT: usize = 224;
/// whisper.cpp refuses input shorter than one second.
const MIN_SAMPLES: usize = TARGET_RATE as usize + TARGET_RATE as usize / 10;

/// How the model is loaded; defaults as whisper-cli's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelOptions {
    pub flash_attn: bool,
    /// Word times by DTW over the model's alignment heads (whisper.cpp's presets, chosen
    /// from the model's shape); turns flash attention off, which whisper.cpp requires.
    pub dtw: bool,
    /// Use the GPU when the binary was built with a GPU back-end (`cuda`, `vulkan`).
    pub use_gpu: bool,
    pub gpu_device: i32,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            flash_attn: true,
            dtw: false,
            use_gpu: true,
            gpu_device: 0,
        }
    }
}

pub struct WhisperTranscriber {
    ctx: Arc<WhisperContext>,
    path: PathBuf,
    /// Token times from cross-attention DTW (`ModelOptions::dtw`) rather than whisper's
    /// timestamp-token estimates.
    dtw: bool,
}

impl WhisperTranscriber {
    pub fn load(path: &Path) -> Result<Self, TranscribeError> {
        Self::load_with(path, &ModelOptions::default())
    }

    pub fn load_with(path: &Path, opts: &ModelOptions) -> Result<Self, TranscribeError> {
        let model_err = |reason: String| TranscribeError::Model {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(model_err(
                "no such model file; run scripts/setup.sh, or import one with \
                 `hotfolderd model import-ct2 DIR --out FILE`"
                    .into(),
            ));
        }
        super::whisper_log::install();
        let mut params = WhisperContextParameters::default();
        params.flash_attn(opts.flash_attn && !opts.dtw);
        if opts.dtw {
            let preset = super::dtw::preset_for(path).map_err(model_err)?;
            params.dtw_parameters(whisper_rs::DtwParameters {
                mode: whisper_rs::DtwMode::ModelPreset {
                    model_preset: preset,
                },
                ..Default::default()
            });
        }
        params.use_gpu(opts.use_gpu && cfg!(any(feature = "cuda", feature = "vulkan")));
        params.gpu_device(opts.gpu_device);
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| {
            model_err(format!(
                "whisper.cpp could not load it ({e}); is it a ggml Whisper model?"
            ))
        })?;
        Ok(WhisperTranscriber {
            ctx: Arc::new(ctx),
            path: path.to_path_buf(),
            dtw: opts.dtw,
        })
    }

    pub fn is_multilingual(&self) -> bool {
        self.ctx.is_multilingual()
    }

    /// whisper.cpp's parameters for one decode at `temperature` (no fallback inside
    /// whisper.cpp: `fallback.rs` does it, call by call).
    fn params<'a>(
        &self,
        opts: &'a DecodeOptions,
        language: &'a str,
        prompt: &'a [i32],
        temperature: f32,
    ) -> FullParams<'a, 'a> {
        let mut p = FullParams::new(strategy(opts, temperature));
        p.set_n_threads(opts.threads.max(1));
        p.set_language(Some(language));
        p.set_translate(opts.translate);
        p.set_temperature(temperature);
        p.set_temperature_inc(0.0);
        p.set_entropy_thold(opts.entropy_thold);
        p.set_logprob_thold(opts.logprob_thold);
        p.set_no_speech_thold(opts.no_speech_thold);
        p.set_no_timestamps(opts.no_timestamps);
        p.set_n_max_text_ctx(if opts.max_context >= 0 {
            opts.max_context
        } else {
            16384
        });
        p.set_suppress_nst(opts.suppress_nst);
        p.set_token_timestamps(!opts.no_timestamps);
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        if !prompt.is_empty() {
            p.set_tokens(prompt);
        }
        // SAFETY: the callback only reads the `Cancel` behind the pointer, which lives in
        // `opts` and so outlives the `FullParams<'a>` that carries it into `whisper_full`.
        // (The crate's closure-based setter leaks a box per call; this does not.)
        unsafe {
            p.set_abort_callback(Some(abort_if_stopped));
            p.set_abort_callback_user_data(
                std::ptr::from_ref(&opts.cancel)
                    .cast_mut()
                    .cast::<std::ffi::c_void>(),
            );
        }
        p
    }

    /// Checks the language option against the model: the language to decode in, or `None`
    /// for `auto` (detected on the audio).
    fn fixed_language(&self, opts: &DecodeOptions) -> Result<Option<String>, TranscribeError> {
        let requested = opts.language.trim().to_lowercase();
        if !self.is_multilingual() {
            if requested != "en" && requested != "auto" {
                return Err(TranscribeError::Options(format!(
                    "language {requested:?} needs a multilingual model; {} is English-only \
                     (use --language en, or setup's `base` model)",
                    self.path.display()
                )));
            }
            return Ok(Some("en".into()));
        }
        if requested == "auto" {
            return Ok(None);
        }
        if whisper_rs::get_lang_id(&requested).is_none() {
            return Err(TranscribeError::Options(format!(
                "unknown language {requested:?}: use a Whisper language code such as en, de, fr, or auto"
            )));
        }
        Ok(Some(requested))
    }

    /// The language of `samples` (padded to whisper's shortest input), among `languages`
    /// when they are set, and its probability.
    fn detect_language(
        &self,
        state: &mut WhisperState,
        opts: &DecodeOptions,
        samples: &[f32],
    ) -> Result<languages::Detected, TranscribeError> {
        let mut padded = Cow::Borrowed(samples);
        if padded.len() < MIN_SAMPLES {
            padded.to_mut().resize(MIN_SAMPLES, 0.0);
        }
        let threads = opts.threads.max(1) as usize;
        let err = |e| TranscribeError::Asr(format!("language detection: {e}"));
        state.pcm_to_mel(&padded, threads).map_err(err)?;
        let (id, probs) = state.lang_detect(0, threads).map_err(err)?;
        let id = most_likely_of(&opts.languages, &probs).unwrap_or(id);
        let p = usize::try_from(id)
            .ok()
            .and_then(|i| probs.get(i))
            .copied()
            .unwrap_or(0.0);
        Ok((whisper_rs::get_lang_str(id).unwrap_or("en").to_string(), p))
    }

    /// Decodes one call's audio at each temperature of the fallback schedule in turn until
    /// a decode passes (`fallback::judge`); its segments carry the temperature, and a note
    /// when an earlier decode was refused. Returns it with the seek tracker of its pass.
    fn decode_call(
        &self,
        state: &mut WhisperState,
        opts: &DecodeOptions,
        lang: &str,
        context: &[i32],
        audio: &CallAudio<'_>,
    ) -> Result<(CallResult, SeekTracker), TranscribeError> {
        let schedule = fallback::temperatures(opts);
        let mut failed: Vec<(CallResult, SeekTracker, f32, fallback::Failure)> = Vec::new();
        for &t in &schedule {
            let tracker = SeekTracker::new(audio.samples.len(), audio.end);
            let mut params = self.params(opts, lang, context, t);
            let data = std::ptr::from_ref(&tracker)
                .cast_mut()
                .cast::<std::ffi::c_void>();
            // SAFETY: `tracker` outlives `state.full` below, the only call that uses
            // `params`, and is only read through shared references (its fields are cells).
            unsafe {
                params.set_start_encoder_callback(Some(seek::on_encoder_begin));
                params.set_start_encoder_callback_user_data(data);
                params.set_progress_callback(Some(seek::on_progress));
                params.set_progress_callback_user_data(data);
            }
            if let Some(ctx) = audio.audio_ctx {
                params.set_audio_ctx(ctx);
            }
            let _watching = super::whisper_log::watching(&opts.cancel);
            state.full(params, audio.samples).map_err(|e| {
                // An abort surfaces as a failed `whisper_full`: report why it was stopped.
                opts.cancel.stopped().map_or_else(
                    || TranscribeError::Asr(e.to_string()),
                    TranscribeError::Stopped,
                )
            })?;
            let mut found = self.segments(state, audio.map);
            let sequence = fallback::Sequence {
                ids: std::mem::take(&mut found.context),
                logprobs: std::mem::take(&mut found.logprobs),
            };
            let verdict = fallback::judge(&found.segments, &sequence, opts);
            found.context = sequence.ids;
            match verdict {
                None => {
                    let first = failed.first().map(|f| f.3.clone());
                    mark(
                        &mut found.segments,
                        t,
                        first.map(|first| fallback::Fallback {
                            first,
                            attempts: failed.len() + 1,
                            passed: true,
                        }),
                    );
                    return Ok((found, tracker));
                }
                Some(why) => {
                    tracing::debug!(temperature = t, failure = ?why, "decode refused");
                    failed.push((found, tracker, t, why));
                }
            }
        }
        let attempts = failed.len();
        let first = failed.first().map(|f| f.3.clone());
        let judged: Vec<(Vec<Segment>, fallback::Failure)> = failed
            .iter()
            .map(|f| (f.0.segments.clone(), f.3.clone()))
            .collect();
        let keep = fallback::best_of_failed(&judged);
        let (mut found, tracker, t, _) = failed.swap_remove(keep);
        // Noted even without a schedule to fall back on (`temperature_inc = 0`): the loop
        // or the low confidence is then in the json for whoever reads it.
        let note = first.map(|first| fallback::Fallback {
            first,
            attempts,
            passed: false,
        });
        mark(&mut found.segments, t, note);
        Ok((found, tracker))
    }

    /// Reads the segments of one call; `map` turns its seconds into seconds in the input.
    fn segments(&self, state: &WhisperState, map: &TimeMap) -> CallResult {
        let to_start = &|t: f64| map.start(t);
        let eot = self.ctx.token_eot();
        let mut out = CallResult::default();
        for seg in state.as_iter() {
            let mut tokens = Vec::new();
            let mut last_token_t0 = None;
            let mut dtw_ends: Vec<Option<f64>> = Vec::new();
            let mut raw_starts: Vec<f64> = Vec::new();
            let mut raw_ends: Vec<f64> = Vec::new();
            for i in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(i) else {
                    continue;
                };
                let data = tok.token_data();
                // Timestamp and special tokens too: whisper-cli's context carries them.
                out.context.push(data.id);
                out.logprobs.push(data.plog);
                if data.id >= eot {
                    continue;
                }
                let text = tok
                    .to_str_lossy()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                last_token_t0 = Some(data.t0 as f64 / 100.0);
                let t0 = data.t0 as f64 / 100.0;
                // The token's DTW time (-1: none); see below.
                dtw_ends.push((data.t_dtw >= 0).then(|| data.t_dtw as f64 / 100.0));
                raw_starts.push(t0);
                raw_ends.push(data.t1 as f64 / 100.0);
                let token = Token {
                    id: data.id,
                    text,
                    start: to_start(t0),
                    end: map.bounded_end(t0, data.t1 as f64 / 100.0),
                    p: data.p,
                };
                tokens.push((token, data.id, data.plog));
            }
            let seg_t0 = seg.start_timestamp() as f64 / 100.0;
            let seg_t1 = seg.end_timestamp() as f64 / 100.0;
            if self.dtw {
                // whisper.cpp gives each token the time the alignment path moves on to the
                // next one: the next token's start. Through a pause the path stays on the
                // word before, so this places starts well (README: measured) and says
                // nothing of ends: a token ends at whisper's estimate, before the next starts.
                let starts: Vec<f64> = (0..tokens.len())
                    .map(|i| match i.checked_sub(1).and_then(|p| dtw_ends[p]) {
                        Some(t) => t,
                        None => raw_starts[i],
                    })
                    .collect();
                for (i, (token, _, _)) in tokens.iter_mut().enumerate() {
                    let next = starts.get(i + 1).copied().unwrap_or(seg_t1).max(starts[i]);
                    let end = raw_ends[i].clamp(starts[i], next);
                    token.start = to_start(starts[i]);
                    token.end = map.bounded_end(starts[i], end);
                }
            }
            out.count += 1;
            out.last_end = Some(seg.end_timestamp());
            let last_t0 = last_token_t0.unwrap_or(seg_t0).max(seg_t0);
            let span = (to_start(seg_t0), map.bounded_end(last_t0, seg_t1));
            if tokens.is_empty() {
                let text = seg
                    .to_str_lossy()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                out.segments
                    .push(segment(span, text, seg.no_speech_probability(), Vec::new()));
                continue;
            }
            out.segments
                .extend(split_at_gaps(span, tokens, seg.no_speech_probability()));
        }
        out
    }
}

/// What one `whisper_full` call found.
#[derive(Default)]
struct CallResult {
    segments: Vec<Segment>,
    /// Every token whisper produced, in order: the text context for the next call.
    context: Vec<i32>,
    /// Their log-probabilities (what fallback judges the decode by).
    logprobs: Vec<f32>,
    /// How many segments whisper found, and where the last one ended (in its frames).
    count: i32,
    last_end: Option<i64>,
}

/// The audio one call decodes, and how it ends (see [`super::seek`]).
struct CallInput {
    joined: Option<Joined>,
    /// The language of its speech, where it was detected while choosing it.
    language: Option<languages::Detected>,
    /// Samples of the raw buffer it covers.
    covered: usize,
    end: BufferEnd,
}

impl WhisperTranscriber {
    /// Chooses the audio for the next call from the raw buffer `buf`: the next 30 s, or the
    /// next 30 s of speech.
    /// With `split` (`language_per_segment`), the call ends before the first stretch of
    /// speech in another language than its first.
    fn call_input(
        vad: Option<(&mut Vad, &mut SpeechMap)>,
        buf: &[f32],
        buf_start: u64,
        eof: bool,
        split: Option<(&mut SpanLanguages, &mut languages::Detect<'_>)>,
    ) -> Result<CallInput, TranscribeError> {
        let Some((vad, speech)) = vad else {
            let covered = buf.len().min(CHUNK_SAMPLES);
            return Ok(CallInput {
                joined: None,
                language: None,
                covered,
                end: if eof && covered == buf.len() {
                    BufferEnd::Input
                } else {
                    BufferEnd::Cut
                },
            });
        };
        let known = speech
            .update(vad, buf, buf_start, eof)
            .map_err(TranscribeError::Asr)?;
        // Only audio VAD has looked at counts: the buffer may run on past it.
        let analysed = (known.saturating_sub(buf_start) as usize).min(buf.len());
        let all = eof && analysed == buf.len();
        let mut spans = speech.spans_in(buf_start, analysed);
        // Speech that runs on past what was analysed is left for a later call, unless it is
        // all there is (then it is cut, and the call does not end cleanly).
        let open = !all && spans.last().is_some_and(|s| s.1 == analysed);
        // Then this call ends where that speech begins: at a pause.
        let mut limit = analysed;
        if open && spans.len() > 1 {
            if let Some(last) = spans.pop() {
                limit = last.0;
            }
        }
        let mut language = None;
        if let Some((langs, detect)) = split {
            let (change, first) = langs.first_change(buf, buf_start, &spans, detect)?;
            language = first;
            if let Some(k) = change {
                limit = spans[k].0;
                spans.truncate(k);
            }
        }
        let still_open = open && limit == analysed;
        let (joined, covered, whole) = Joined::limited(&buf[..limit], &spans, CHUNK_SAMPLES);
        let end = if !whole || (still_open && covered == analysed) {
            BufferEnd::Cut
        } else if all && covered == buf.len() {
            BufferEnd::Input
        } else {
            BufferEnd::Pause
        };
        Ok(CallInput {
            joined: Some(joined),
            language,
            covered,
            end,
        })
    }
}

impl Transcriber for WhisperTranscriber {
    fn model_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn transcribe(
        &self,
        audio: &mut dyn AudioSource,
        opts: &DecodeOptions,
    ) -> Result<Transcript, TranscribeError> {
        let window = opts.window_seconds.max(MIN_WINDOW_SECONDS) * TARGET_RATE as usize;
        let mut state = self
            .ctx
            .create_state()
            .map_err(|e| TranscribeError::Asr(format!("cannot create a whisper state: {e}")))?;
        let mut buf: Vec<f32> = Vec::with_capacity(window);
        let mut buf_start: u64 = 0;
        let mut eof = false;
        let fixed = self.fixed_language(opts)?;
        let per_segment = fixed.is_none() && opts.language_per_segment;
        // auto: detected on the first call, or (per segment) on every stretch of speech.
        let mut language: Option<String> = fixed.clone();
        let mut detections: Vec<languages::Detected> = Vec::new();
        let mut span_languages = SpanLanguages::default();
        // The prompt (and hotwords) stay when the text context is dropped.
        let prompt_tokens: Vec<i32> = match &opts.prompt {
            Some(p) if !p.is_empty() => self.ctx.tokenize(p, 224).map_err(|e| {
                TranscribeError::Options(format!("cannot tokenize the prompt: {e}"))
            })?,
            _ => Vec::new(),
        };
        let mut context = prompt_tokens.clone();
        let mut vad = match &opts.vad_model {
            Some(path) => Some(Vad::load(path, &opts.vad).map_err(TranscribeError::Options)?),
            None => None,
        };
        // With VAD, look further ahead so each window can be filled with speech.
        let raw_window = if vad.is_some() {
            window * LOOKAHEAD
        } else {
            window
        };
        let max_ctx = if opts.max_context >= 0 {
            opts.max_context as usize
        } else {
            MAX_TEXT_CONTEXT
        };
        let mut speech = SpeechMap::default();
        let mut segments: Vec<Segment> = Vec::new();
        let mut dropped = 0usize;
        let mut speech_samples = 0u64;
        let (mut decode_s, mut asr_s) = (0f64, 0f64);

        loop {
            if let Some(why) = opts.cancel.stopped() {
                return Err(TranscribeError::Stopped(why));
            }
            let t = Instant::now();
            while buf.len() < raw_window && !eof {
                // Small pulls keep the decoder's own buffer small.
                let want = (raw_window - buf.len()).min(TARGET_RATE as usize);
                if audio.read(&mut buf, want)? == 0 {
                    eof = true;
                }
            }
            decode_s += t.elapsed().as_secs_f64();
            if buf.is_empty() {
                break;
            }
            let t = Instant::now();
            let real_len = buf.len();
            let offset = buf_start as f64 / f64::from(TARGET_RATE);
            let mut detect = |samples: &[f32]| self.detect_language(&mut state, opts, samples);
            let split = per_segment.then_some((
                &mut span_languages,
                &mut detect as &mut languages::Detect<'_>,
            ));
            let call = Self::call_input(
                vad.as_mut().map(|v| (v, &mut speech)),
                &buf,
                buf_start,
                eof,
                split,
            )?;
            let mut input: Cow<[f32]> = match &call.joined {
                Some(j) => Cow::Borrowed(&j.samples),
                None => Cow::Borrowed(&buf[..call.covered]),
            };
            let done = call.end == BufferEnd::Input;
            let mut cut = call.covered;
            // A lone stretch of speech that runs on past the buffer but is shorter than a
            // pass: wait until more of it is read (the silence before it is skipped).
            let wait_for_more = (call.end == BufferEnd::Cut && input.len() < CHUNK_SAMPLES)
                .then(|| call.joined.as_ref().and_then(Joined::first_source_sample))
                .flatten()
                .filter(|&first| first > 0);
            if let Some(first) = wait_for_more {
                cut = first;
            } else if !input.is_empty() {
                speech_samples += input.len() as u64;
                if input.len() < MIN_SAMPLES {
                    input.to_mut().resize(MIN_SAMPLES, 0.0);
                }
                let lang = match (&language, &call.language) {
                    (Some(l), _) if !per_segment => l.clone(),
                    (_, Some(found)) => {
                        detections.push(found.clone());
                        found.0.clone()
                    }
                    _ => {
                        let found = self.detect_language(&mut state, opts, &input)?;
                        detections.push(found.clone());
                        found.0
                    }
                };
                if per_segment && language.as_deref().is_some_and(|l| l != lang) {
                    // The text before is in another language: it would pull this call back
                    // into it.
                    context.clone_from(&prompt_tokens);
                }
                language = Some(lang.clone());
                let map = TimeMap {
                    offset,
                    joined: call.joined.as_ref(),
                };
                // Only when this call is the whole input: a fitted context on one window of
                // many would change the model's view of time between windows.
                let fit = (opts.audio_ctx == AudioCtx::Fit && done && buf_start == 0)
                    .then(|| fitted_audio_ctx(input.len()))
                    .flatten();
                let call_audio = CallAudio {
                    samples: &input,
                    end: call.end,
                    audio_ctx: fit,
                    map: &map,
                };
                let (mut found, tracker) =
                    self.decode_call(&mut state, opts, &lang, &context, &call_audio)?;
                for s in &mut found.segments {
                    s.language = Some(lang.clone());
                }
                if !done {
                    // Resume where whisper would have sought to, in the raw buffer.
                    let at = tracker.resume_at(found.count, found.last_end) as f64
                        / f64::from(TARGET_RATE);
                    let raw = call.joined.as_ref().map_or(at, |j| j.to_original_start(at));
                    cut = ((raw * f64::from(TARGET_RATE)).round() as usize).clamp(1, call.covered);
                }
                let end_of_audio = (buf_start + real_len as u64) as f64 / f64::from(TARGET_RATE);
                // A decode that needed a hot fallback, or that no temperature made pass (a loop
                // maybe), is not carried into the next call's context (as OpenAI's whisper).
                let unsure = found.segments.first().is_some_and(|s| {
                    s.temperature > 0.5 || s.fallback.as_ref().is_some_and(|f| !f.passed)
                });
                for seg in found.segments {
                    let clipped = clip(seg, end_of_audio);
                    if !opts.keep_annotations && is_non_speech_annotation(&clipped.text) {
                        dropped += 1;
                        continue;
                    }
                    push_in_order(&mut segments, clipped);
                }
                if unsure {
                    context.clone_from(&prompt_tokens);
                } else {
                    context.extend(found.context);
                }
                if context.len() > max_ctx {
                    context.drain(..context.len() - max_ctx);
                }
            }
            asr_s += t.elapsed().as_secs_f64();
            if !done && cut == 0 {
                // Cannot happen (every call covers some audio); never loop on it.
                return Err(TranscribeError::Asr(format!(
                    "no progress at {offset:.2} s: the call loop would repeat forever"
                )));
            }
            if done {
                buf_start += real_len as u64;
                opts.progress
                    .done_up_to(buf_start as f64 / f64::from(TARGET_RATE));
                break;
            }

            buf.drain(..cut);
            buf_start += cut as u64;
            opts.progress
                .done_up_to(buf_start as f64 / f64::from(TARGET_RATE));
        }
        let shares = languages::shares(&detections, &segments);
        // The most spoken of those detected; else the one given (or the last call's).
        let language = (shares.first().map(|s| s.language.clone()))
            .or(fixed)
            .or(language)
            .unwrap_or_else(|| "en".into());
        Ok(Transcript {
            language,
            languages: shares,
            duration: buf_start as f64 / f64::from(TARGET_RATE),
            segments,
            dropped_non_speech: dropped,
            vad_speech_seconds: vad
                .is_some()
                .then(|| speech_samples as f64 / f64::from(TARGET_RATE)),
            decode_seconds: decode_s,
            asr_seconds: asr_s,
            speakers: Vec::new(),
            turns: Vec::new(),
            diarized: false,
            overlaps: Vec::new(),
        })
    }
}

/// The most likely of `allowed` by detection's probabilities (`None`: no restriction).
fn most_likely_of(allowed: &[String], probs: &[f32]) -> Option<i32> {
    allowed
        .iter()
        .filter_map(|l| whisper_rs::get_lang_id(l))
        .filter_map(|id| Some((id, *probs.get(usize::try_from(id).ok()?)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(id, _)| id)
}

/// The audio of one call and how whisper is to see it.
struct CallAudio<'a> {
    samples: &'a [f32],
    end: BufferEnd,
    /// A fitted encoder context (`AudioCtx::Fit` on an input shorter than a window).
    audio_ctx: Option<i32>,
    map: &'a TimeMap<'a>,
}

/// Beam search at temperature 0 when asked for; sampling `best_of` candidates above it, as
/// whisper-cli does under fallback.
fn strategy(opts: &DecodeOptions, temperature: f32) -> SamplingStrategy {
    if temperature <= 0.0 && opts.beam_size > 1 {
        SamplingStrategy::BeamSearch {
            beam_size: opts.beam_size,
            patience: -1.0,
        }
    } else {
        SamplingStrategy::Greedy {
            best_of: opts.best_of,
        }
    }
}

/// Notes on each segment of a decode the temperature that made it and its fallback.
fn mark(segments: &mut [Segment], temperature: f32, note: Option<fallback::Fallback>) {
    for s in segments {
        s.temperature = temperature;
        s.fallback.clone_from(&note);
    }
}

/// whisper.cpp's abort callback: `data` is the `&Cancel` set in `params`.
unsafe extern "C" fn abort_if_stopped(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: see `params`; the pointer is valid for the whole `whisper_full` call.
    let cancel = unsafe { &*(data.cast::<Cancel>()) };
    cancel.stopped().is_some()
}

/// Seconds in whisper's input → seconds in the original audio.
struct TimeMap<'a> {
    offset: f64,
    joined: Option<&'a Joined>,
}

impl TimeMap<'_> {
    fn start(&self, t: f64) -> f64 {
        self.offset + self.joined.map_or(t, |j| j.to_original_start(t))
    }

    fn end(&self, t: f64) -> f64 {
        self.offset + self.joined.map_or(t, |j| j.to_original(t))
    }

    /// Whisper's end times run late; where skipped non-speech was cut out, a late end would
    /// land in the next stretch of speech, so an end is at most its start's mapping plus the
    /// duration whisper gave.
    fn bounded_end(&self, start: f64, end: f64) -> f64 {
        self.end(end)
            .min(self.start(start) + (end - start).max(0.0))
    }
}

/// A pause longer than this between two tokens of one segment splits it: after VAD joins
/// speech across a long silence, whisper may return one segment spanning both sides.
const SPLIT_GAP_SECONDS: f64 = 1.0;

fn segment(
    span: (f64, f64),
    text: String,
    no_speech_prob: f32,
    tokens: Vec<(Token, i32, f32)>,
) -> Segment {
    let avg_logprob = if tokens.is_empty() {
        0.0
    } else {
        tokens.iter().map(|t| t.2).sum::<f32>() / tokens.len() as f32
    };
    let tokens: Vec<Token> = tokens.into_iter().map(|t| t.0).collect();
    Segment {
        start: span.0,
        end: span.1,
        compression_ratio: compression_ratio(text.trim()),
        temperature: 0.0,
        fallback: None,
        language: None,
        channel: None,
        speaker: None,
        text,
        no_speech_prob,
        avg_logprob,
        words: words_from_tokens(&tokens),
        tokens,
    }
}

/// Splits one whisper segment's (token, id, logprob) list wherever the audio between two
/// tokens is longer than [`SPLIT_GAP_SECONDS`], only where a word begins (a leading space,
/// or after punctuation), and never inside an annotation: `[BLANK_AUDIO]` is several tokens, and
/// its halves would each escape the annotation filter.
fn split_at_gaps(span: (f64, f64), tokens: Vec<(Token, i32, f32)>, no_speech: f32) -> Vec<Segment> {
    let whole: String = tokens.iter().map(|t| t.0.text.as_str()).collect();
    let splittable = !is_non_speech_annotation(&whole);
    let mut groups: Vec<Vec<(Token, i32, f32)>> = vec![Vec::new()];
    let mut prev_end: Option<f64> = None;
    // Inside "[…]" or "(…)": an annotation among words (" so [BLANK_AUDIO] then") too.
    let mut open_brackets = 0usize;
    for mut t in tokens {
        // Punctuation that ends a word ("," "." "]") belongs to it: whisper may time it after
        // the pause that follows ("announcement" at 2 s, its "," at 73 s), which would hide
        // the pause from the word after it.
        let trailing_punctuation = !t.0.text.starts_with(' ')
            && !t.0.text.is_empty()
            && !t.0.text.chars().any(char::is_alphanumeric);
        if let (true, Some(end)) = (trailing_punctuation, prev_end) {
            t.0.start = end;
            t.0.end = end;
        }
        if let (Some(end), Some(last)) = (prev_end, groups.last()) {
            // A space begins a word; after punctuation ("。") a new one begins too.
            let after_word = last
                .last()
                .and_then(|p| p.0.text.chars().last())
                .is_some_and(char::is_alphanumeric);
            let word_start = t.0.text.starts_with(' ') || !after_word;
            if splittable
                && open_brackets == 0
                && word_start
                && t.0.start - end > SPLIT_GAP_SECONDS
                && !last.is_empty()
            {
                groups.push(Vec::new());
            }
        }
        for c in t.0.text.chars() {
            match c {
                '[' | '(' => open_brackets += 1,
                ']' | ')' => open_brackets = open_brackets.saturating_sub(1),
                _ => {}
            }
        }
        prev_end = Some(t.0.end.max(prev_end.unwrap_or(f64::MIN)));
        if let Some(g) = groups.last_mut() {
            g.push(t);
        }
    }
    let n = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let first = g.first().map_or(span.0, |t| t.0.start);
            let last = g.last().map_or(span.1, |t| t.0.end);
            // Whisper's segment start can lie in the speech before a skipped pause; the first
            // token's time is then the better one.
            let start = if i == 0 && first - span.0 <= SPLIT_GAP_SECONDS {
                span.0.min(first)
            } else {
                first
            };
            let end = if i + 1 == n { span.1.max(last) } else { last };
            let text: String = g.iter().map(|t| t.0.text.as_str()).collect();
            segment((start, end), text, no_speech, g)
        })
        .collect()
}

/// Keeps timestamps inside the audio (whisper may round the last one past the end).
fn clip(mut seg: Segment, end_of_audio: f64) -> Segment {
    seg.end = seg.end.min(end_of_audio);
    seg.start = seg.start.min(seg.end);
    for t in &mut seg.tokens {
        t.end = t.end.min(end_of_audio);
        t.start = t.start.min(t.end);
    }
    for w in &mut seg.words {
        w.end = w.end.min(end_of_audio);
        w.start = w.start.min(w.end);
    }
    seg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// whisper-rs sets whisper.cpp's `greedy.best_of` only with the greedy strategy, so a
    /// fallback inside whisper.cpp from beam search sampled its default 5, not `best_of`.
    #[test]
    fn fallback_from_beam_search_samples_best_of_candidates() {
        let opts = DecodeOptions {
            beam_size: 5,
            best_of: 2,
            ..DecodeOptions::default()
        };
        assert!(matches!(
            strategy(&opts, 0.0),
            SamplingStrategy::BeamSearch { beam_size: 5, .. }
        ));
        assert!(matches!(
            strategy(&opts, 0.2),
            SamplingStrategy::Greedy { best_of: 2 }
        ));
    }

    #[test]
    fn detection_chooses_only_among_the_allowed_languages() {
        let id = |l: &str| whisper_rs::get_lang_id(l).unwrap();
        let mut probs = vec![0.0f32; 100];
        probs[id("de") as usize] = 0.7;
        probs[id("en") as usize] = 0.1;
        probs[id("fr") as usize] = 0.2;
        let allowed = |ls: &[&str]| ls.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert_eq!(
            most_likely_of(&allowed(&["en", "de"]), &probs),
            Some(id("de"))
        );
        assert_eq!(
            most_likely_of(&allowed(&["en", "fr"]), &probs),
            Some(id("fr"))
        );
        assert_eq!(
            most_likely_of(&[], &probs),
            None,
            "no set: whisper's own choice"
        );
    }

    fn tok(text: &str, start: f64, end: f64) -> (Token, i32, f32) {
        let t = Token {
            id: 1,
            text: text.into(),
            start,
            end,
            p: 0.9,
        };
        (t, 1, -0.1)
    }

    #[test]
    fn a_segment_spanning_a_long_pause_is_split() {
        let toks = vec![
            tok(" Good", 0.0, 0.3),
            tok(" morning.", 0.3, 0.9),
            tok(" Second", 72.0, 72.5),
            tok(" part.", 72.5, 73.0),
        ];
        let out = split_at_gaps((0.0, 73.2), toks, 0.01);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, " Good morning.");
        assert_eq!((out[0].start, out[0].end), (0.0, 0.9));
        assert_eq!(out[1].text, " Second part.");
        assert_eq!((out[1].start, out[1].end), (72.0, 73.2));
        assert_eq!(out[1].tokens.len(), 2);
        // A segment start far before its first token is moved to that token.
        let out = split_at_gaps((76.0, 124.2), vec![tok(" Finally", 121.5, 122.0)], 0.0);
        assert_eq!((out[0].start, out[0].end), (121.5, 124.2));
        // Short pauses do not split.
        let toks = vec![tok(" a", 0.0, 0.2), tok(" b", 0.9, 1.0)];
        assert_eq!(split_at_gaps((0.0, 1.0), toks, 0.0).len(), 1);
    }

    /// Token times can put a long gap inside `[BLANK_AUDIO]` or a word; split there, each
    /// half escaped the annotation filter or came out as half a word.
    #[test]
    fn annotations_and_words_are_never_split() {
        let toks = vec![
            tok(" [", 0.0, 0.1),
            tok("BL", 0.1, 0.2),
            tok("ANK", 3.0, 3.1),
            tok("_", 3.1, 3.2),
            tok("AUDIO", 3.2, 3.3),
            tok("]", 3.3, 3.4),
        ];
        let out = split_at_gaps((0.0, 3.4), toks, 0.9);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, " [BLANK_AUDIO]");
        assert!(is_non_speech_annotation(&out[0].text));
        let toks = vec![
            tok(" (", 0.0, 0.1),
            tok("wind", 0.1, 0.4),
            tok(" how", 2.0, 2.2),
            tok("ling", 2.2, 2.4),
            tok(")", 2.4, 2.5),
        ];
        assert_eq!(split_at_gaps((0.0, 2.5), toks, 0.9).len(), 1);
        let toks = vec![
            tok(" Hel", 0.0, 0.2),
            tok("lo", 2.0, 2.2),
            tok(" there", 4.0, 4.3),
        ];
        let out = split_at_gaps((0.0, 4.3), toks, 0.0);
        let texts: Vec<&str> = out.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, [" Hello", " there"]);
        // A comma timed after the pause stays with its word; the pause still splits.
        let toks = vec![
            tok(" first", 1.5, 1.9),
            tok(" announcement", 1.9, 2.57),
            tok(",", 72.99, 73.01),
            tok(" the", 73.01, 73.19),
            tok(" second", 73.19, 73.5),
        ];
        let out = split_at_gaps((0.0, 76.0), toks, 0.0);
        let texts: Vec<&str> = out.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, [" first announcement,", " the second"]);
        assert_eq!((out[0].end, out[1].start), (2.57, 73.01));
        // An annotation among words stays whole; the words around it split as before.
        let toks = vec![
            tok(" So", 0.0, 0.2),
            tok(" [", 3.0, 3.1),
            tok("BL", 5.0, 5.1),
            tok("ANK", 6.0, 6.1),
            tok("_AUDIO", 6.1, 6.2),
            tok("]", 6.2, 6.3),
            tok(" then", 9.0, 9.2),
        ];
        let texts: Vec<String> = split_at_gaps((0.0, 9.2), toks, 0.0)
            .into_iter()
            .map(|s| s.text)
            .collect();
        assert_eq!(texts, [" So", " [BLANK_AUDIO]", " then"]);
        // Without spaces (Chinese), after punctuation.
        let toks = vec![
            tok("你好", 0.0, 0.4),
            tok("。", 0.4, 0.5),
            tok("再见", 3.0, 3.4),
        ];
        assert_eq!(split_at_gaps((0.0, 3.4), toks, 0.0).len(), 2);
    }

    #[test]
    fn a_fitted_context_covers_the_audio_with_a_margin() {
        let secs = |s: f64| (s * 16_000.0) as usize;
        assert_eq!(fitted_audio_ctx(secs(1.6)), Some(192));
        assert_eq!(fitted_audio_ctx(secs(10.0)), Some(576));
        assert_eq!(fitted_audio_ctx(secs(28.0)), Some(1472));
        assert_eq!(
            fitted_audio_ctx(secs(29.5)),
            None,
            "the full context is no bigger"
        );
    }
}
