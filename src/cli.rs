//! Command-line interface. Names follow whisper.cpp's `whisper-cli` where they overlap, so
//! users can compare like with like.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::WeightType;
use crate::pipeline::render::Format;
use crate::pipeline::transcribe::DecodeOptions;

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
pub enum Command {
    /// Transcribe audio files (wav, flac, mp3, ogg/vorbis, ogg/opus, webm, m4a, …).
    Transcribe(TranscribeArgs),
    /// Manage Whisper models.
    #[command(subcommand)]
    Model(ModelCommand),
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
    /// Suppress non-speech tokens during decoding.
    #[arg(long = "suppress-nst")]
    pub suppress_nst: bool,
    /// Keep segments that are only annotations like [BLANK_AUDIO] (dropped by default).
    #[arg(long = "keep-annotations")]
    pub keep_annotations: bool,
}

impl DecodeArgs {
    pub fn to_options(&self) -> DecodeOptions {
        let defaults = DecodeOptions::default();
        DecodeOptions {
            threads: self.threads.unwrap_or(defaults.threads),
            language: self.language.clone(),
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
            prompt: self.prompt.clone(),
            suppress_nst: self.suppress_nst,
            keep_annotations: self.keep_annotations,
        }
    }
}
