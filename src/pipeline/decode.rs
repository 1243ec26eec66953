//! Streaming audio decode: any container/codec symphonia knows plus Opus (libopus) →
//! downmix → 16 kHz mono f32, pulled in bounded pieces. Nothing here holds a whole file.

use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use super::audio_track::{pick, AudioTrack, Offered};
use super::resample::MonoResampler;

/// Why an input cannot be decoded. Each says what is wrong in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{}", open_error(.0))]
    Open(std::io::Error),
    #[error("is empty (0 bytes); nothing to transcribe")]
    Empty,
    #[error("{0}")]
    NotAFile(&'static str),
    #[error("not a recognised audio file ({0}); supported: wav, flac, mp3, ogg (vorbis/opus), m4a/mp4 (aac/alac), mkv/webm, avi, caf")]
    UnknownFormat(String),
    #[error("looks like a text file, not audio")]
    Text,
    #[error("contains no audio track")]
    NoAudioTrack,
    /// The audio track asked for (`audio_track`) is not there: which ones are.
    #[error("{0}")]
    NoSuchTrack(String),
    #[error("audio codec {0} is not supported; convert it first, e.g. `ffmpeg -i IN -c:a flac OUT.flac`")]
    UnsupportedCodec(String),
    #[error("contains no audio samples{0}")]
    NoSamples(String),
    #[error("truncated: the header promises {expected:.1} s of audio but the file ends after {got:.1} s (incomplete upload or copy?)")]
    Truncated { expected: f64, got: f64 },
    #[error("corrupt audio data after {at:.1} s: {detail}")]
    Corrupt { at: f64, detail: String },
    #[error("{0}")]
    Resample(String),
}

/// Full scale is 1.0; float formats may go over it, but 30 dB over is no longer sound, and
/// bounding it keeps the resampler's sums finite.
const MAX_AMPLITUDE: f32 = 32.0;

fn open_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot open: {e} (make it readable by the user hotfolderd runs as)")
        }
        _ => format!("cannot open: {e}"),
    }
}

/// What the container says about the audio, before decoding.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AudioInfo {
    pub container: String,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: usize,
    /// Duration declared by the container, when it declares one.
    pub declared_seconds: Option<f64>,
    /// Which audio track was transcribed (0 is the first), of how many.
    pub track: usize,
    pub audio_tracks: usize,
    /// The track's language tag, when the container gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_language: Option<String>,
}

fn codecs() -> &'static CodecRegistry {
    static REGISTRY: OnceLock<CodecRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
        registry
    })
}

/// symphonia's formats and the AVI demuxer it lacks.
fn probe() -> &'static symphonia::core::formats::probe::Probe {
    static PROBE: OnceLock<symphonia::core::formats::probe::Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let mut probe = symphonia::core::formats::probe::Probe::default();
        symphonia::default::register_enabled_formats(&mut probe);
        probe.register_format::<super::avi::AviReader<'_>>();
        probe
    })
}

/// The languages of the subtitle tracks inside a media file (an mkv's own subtitles), as
/// the container tags them; empty when it has none or cannot be read. Only regular files
/// are opened, so a FIFO never blocks.
pub fn subtitle_track_languages(path: &Path) -> Vec<String> {
    let opened = std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .and_then(|_| File::open(path).ok());
    let Some(file) = opened else {
        return Vec::new();
    };
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let options = (FormatOptions::default(), MetadataOptions::default());
    let Ok(format) = probe().probe(&hint, mss, options.0, options.1) else {
        return Vec::new();
    };
    format
        .tracks()
        .iter()
        .filter(|t| {
            matches!(
                t.codec_params,
                Some(symphonia::core::codecs::CodecParameters::Subtitle(_))
            )
        })
        .filter_map(|t| t.language.clone())
        .collect()
}

pub struct AudioDecoder16k {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    info: AudioInfo,
    resampler: MonoResampler,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
    /// 16 kHz samples produced but not yet handed out.
    ready: Vec<f32>,
    source_frames: u64,
    finished: bool,
    /// Sees every sample handed out, in order (keeps the audio for datasets).
    tap: Option<Tap>,
    /// With split channels: channel 1, resampled on its own (the main output is channel 0).
    side: Option<Side>,
}

/// The second channel of a split file, handed to its tap as it is decoded.
struct Side {
    resampler: MonoResampler,
    input: Vec<f32>,
    ready: Vec<f32>,
    tap: Tap,
}

/// A regular, non-empty file.
fn check_kind(meta: &std::fs::Metadata) -> Result<(), DecodeError> {
    if meta.is_dir() {
        return Err(DecodeError::NotAFile("is a directory, not an audio file"));
    }
    if !meta.is_file() {
        return Err(DecodeError::NotAFile(
            "is not a regular file (a pipe, socket or device)",
        ));
    }
    if meta.len() == 0 {
        return Err(DecodeError::Empty);
    }
    Ok(())
}

/// A consumer of the decoded 16 kHz mono stream, alongside the transcriber.
pub type Tap = Box<dyn FnMut(&[f32]) + Send>;

impl AudioDecoder16k {
    pub fn open_path(path: &Path) -> Result<Self, DecodeError> {
        Self::open_path_track(path, &AudioTrack::Default)
    }

    /// As `open_path`, decoding the audio track `choice` picks.
    pub fn open_path_track(path: &Path, choice: &AudioTrack) -> Result<Self, DecodeError> {
        // Before opening: opening a FIFO would wait for a writer.
        check_kind(&std::fs::metadata(path).map_err(DecodeError::Open)?)?;
        let file = File::open(path).map_err(DecodeError::Open)?;
        Self::open_file_track(file, path, choice)
    }

    /// Decodes a file already opened (the daemon opens inputs itself, without following
    /// links); `path` gives the extension hint.
    pub fn open_file(file: File, path: &Path) -> Result<Self, DecodeError> {
        Self::open_file_track(file, path, &AudioTrack::Default)
    }

    /// As `open_file`, decoding the audio track `choice` picks.
    pub fn open_file_track(
        mut file: File,
        path: &Path,
        choice: &AudioTrack,
    ) -> Result<Self, DecodeError> {
        use std::io::{Read, Seek, SeekFrom};
        check_kind(&file.metadata().map_err(DecodeError::Open)?)?;
        let mut head = Vec::with_capacity(512);
        (&mut file)
            .take(512)
            .read_to_end(&mut head)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .map_err(DecodeError::Open)?;
        if looks_like_text(&head) {
            return Err(DecodeError::Text);
        }
        let ext = path.extension().and_then(|e| e.to_str());
        Self::open_track(Box::new(file), ext, choice)
    }

    /// Opens audio arriving as a byte stream that cannot seek (an S3 response body): the
    /// same checks as `open_path` on its first bytes, then decoding as bytes arrive.
    pub fn open_stream(
        stream: Box<dyn std::io::Read + Send + Sync>,
        extension: Option<&str>,
    ) -> Result<Self, DecodeError> {
        Self::open_stream_track(stream, extension, &AudioTrack::Default)
    }

    /// As `open_stream`, decoding the audio track `choice` picks.
    pub fn open_stream_track(
        mut stream: Box<dyn std::io::Read + Send + Sync>,
        extension: Option<&str>,
        choice: &AudioTrack,
    ) -> Result<Self, DecodeError> {
        use std::io::Read;
        let mut head = Vec::with_capacity(512);
        (&mut stream)
            .take(512)
            .read_to_end(&mut head)
            .map_err(DecodeError::Open)?;
        if head.is_empty() {
            return Err(DecodeError::Empty);
        }
        if looks_like_text(&head) {
            return Err(DecodeError::Text);
        }
        let whole = std::io::Cursor::new(head).chain(stream);
        Self::open_track(
            Box::new(symphonia::core::io::ReadOnlySource::new(whole)),
            extension,
            choice,
        )
    }

    pub fn open(
        source: Box<dyn MediaSource>,
        extension: Option<&str>,
    ) -> Result<Self, DecodeError> {
        Self::open_track(source, extension, &AudioTrack::Default)
    }

    /// Probes the container and decodes the audio track `choice` picks (chosen before any
    /// decoder is made, so a default track in a codec without a decoder is no obstacle).
    pub fn open_track(
        source: Box<dyn MediaSource>,
        extension: Option<&str>,
        choice: &AudioTrack,
    ) -> Result<Self, DecodeError> {
        let mss = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = extension {
            hint.with_extension(ext);
        }
        let format = probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| DecodeError::UnknownFormat(e.to_string()))?;
        let default = format
            .default_track(TrackType::Audio)
            .ok_or(DecodeError::NoAudioTrack)?
            .id;
        let id = match choice {
            AudioTrack::Default => default,
            _ => pick(choice, &Self::audio_tracks(format.as_ref()), default)
                .map_err(DecodeError::NoSuchTrack)?,
        };
        Self::for_track(format, id)
    }

    /// The file's audio tracks, in order.
    fn audio_tracks(format: &dyn FormatReader) -> Vec<Offered> {
        format
            .tracks()
            .iter()
            .filter_map(|t| {
                let params = t.codec_params.as_ref()?.audio()?;
                let codec = codecs()
                    .get_audio_decoder(params.codec)
                    .map(|c| c.codec.info.short_name.to_string())
                    .unwrap_or_else(|| unsupported_codec_name(params.codec));
                Some(Offered {
                    id: t.id,
                    language: t.language.clone(),
                    codec,
                })
            })
            .collect()
    }

    fn for_track(format: Box<dyn FormatReader>, id: u32) -> Result<Self, DecodeError> {
        let container = format.format_info().short_name.to_string();
        let audio = Self::audio_tracks(format.as_ref());
        let position = audio.iter().position(|t| t.id == id).unwrap_or(0);
        let track = format
            .tracks()
            .iter()
            .find(|t| t.id == id)
            .ok_or(DecodeError::NoAudioTrack)?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or(DecodeError::NoAudioTrack)?
            .clone();
        let codec_name = codecs()
            .get_audio_decoder(params.codec)
            .map(|c| c.codec.info.short_name.to_string())
            .unwrap_or_else(|| unsupported_codec_name(params.codec));
        let decoder = codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|_| DecodeError::UnsupportedCodec(format!("{codec_name} in {container}")))?;
        let sample_rate = params.sample_rate.unwrap_or(0);
        let declared_seconds = match (track.num_frames, track.time_base) {
            (Some(n), Some(tb)) => {
                Some(n as f64 * f64::from(tb.numer.get()) / f64::from(tb.denom.get()))
            }
            (Some(n), None) if sample_rate > 0 => Some(n as f64 / f64::from(sample_rate)),
            _ => None,
        };
        let info = AudioInfo {
            container,
            codec: codec_name,
            sample_rate,
            channels: params.channels.as_ref().map_or(0, |c| c.count()),
            declared_seconds,
            track: position,
            audio_tracks: audio.len(),
            track_language: track.language.clone(),
        };
        let track_id = track.id;
        // The real rate is known for sure only from the first decoded buffer; start with the
        // declared one and rebuild if they differ.
        // An undeclared rate (0) starts as 16 kHz (no resampling) until the first buffer.
        let start_rate = if sample_rate == 0 {
            crate::pipeline::resample::TARGET_RATE
        } else {
            sample_rate
        };
        let resampler = MonoResampler::new(start_rate).map_err(DecodeError::Resample)?;
        Ok(AudioDecoder16k {
            format,
            decoder,
            track_id,
            info,
            resampler,
            interleaved: Vec::new(),
            mono: Vec::new(),
            ready: Vec::new(),
            source_frames: 0,
            finished: false,
            tap: None,
            side: None,
        })
    }

    /// Splits the channels: `read` hands out channel 0 alone, and channel 1 (resampled the
    /// same way) goes to `tap` as it is decoded. Channels past the second are left out.
    pub fn split_channels(&mut self, tap: Tap) -> Result<(), DecodeError> {
        let rate = match self.info.sample_rate {
            0 => crate::pipeline::resample::TARGET_RATE,
            r => r,
        };
        self.side = Some(Side {
            resampler: MonoResampler::new(rate).map_err(DecodeError::Resample)?,
            input: Vec::new(),
            ready: Vec::new(),
            tap,
        });
        Ok(())
    }

    /// Every sample `read` hands out from now on is also given to `tap`.
    pub fn set_tap(&mut self, tap: Option<Tap>) {
        self.tap = tap;
    }

    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// Seconds of source audio decoded so far.
    pub fn decoded_seconds(&self) -> f64 {
        if self.info.sample_rate == 0 {
            0.0
        } else {
            self.source_frames as f64 / f64::from(self.info.sample_rate)
        }
    }

    /// Appends up to `max` 16 kHz mono samples to `out`; returns how many (0 = end of audio).
    pub fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize, DecodeError> {
        while self.ready.len() < max && !self.finished {
            self.decode_next()?;
        }
        let n = self.ready.len().min(max);
        let from = out.len();
        out.extend(self.ready.drain(..n));
        if let Some(tap) = &mut self.tap {
            tap(&out[from..]);
        }
        Ok(n)
    }

    fn decode_next(&mut self) -> Result<(), DecodeError> {
        let packet = match self.format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return self.finish(),
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return self.finish()
            }
            Err(SymError::ResetRequired) => return self.finish(),
            Err(e) => {
                return Err(DecodeError::Corrupt {
                    at: self.decoded_seconds(),
                    detail: e.to_string(),
                })
            }
        };
        if packet.track_id != self.track_id {
            return Ok(());
        }
        let buf = match self.decoder.decode(&packet) {
            Ok(buf) => buf,
            // A damaged packet is skipped, as every player does; the rest still decodes.
            Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => return Ok(()),
            Err(e) => {
                return Err(DecodeError::Corrupt {
                    at: self.decoded_seconds(),
                    detail: e.to_string(),
                })
            }
        };
        let rate = buf.spec().rate();
        let channels = buf.spec().channels().count().max(1);
        if rate != self.info.sample_rate && rate > 0 {
            if self.source_frames > 0 {
                return Err(DecodeError::Corrupt {
                    at: self.decoded_seconds(),
                    detail: format!("sample rate changed mid-stream to {rate} Hz"),
                });
            }
            self.info.sample_rate = rate;
            self.resampler = MonoResampler::new(rate).map_err(DecodeError::Resample)?;
            if let Some(side) = &mut self.side {
                side.resampler = MonoResampler::new(rate).map_err(DecodeError::Resample)?;
            }
        }
        self.interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut self.interleaved);
        self.mono.clear();
        match &mut self.side {
            Some(side) if channels >= 2 => {
                let frames = self.interleaved.chunks_exact(channels);
                self.mono.extend(frames.clone().map(|f| f[0]));
                side.input.clear();
                side.input.extend(frames.map(|f| f[1]));
            }
            side => {
                self.mono.extend(
                    self.interleaved
                        .chunks_exact(channels)
                        .map(|frame| frame.iter().sum::<f32>() / channels as f32),
                );
                // A mono buffer of a split stream: channel 1 is silent, not shorter.
                if let Some(side) = side {
                    side.input.clear();
                    side.input.resize(self.mono.len(), 0.0);
                }
            }
        }
        let (rate, at) = (self.info.sample_rate, self.source_frames);
        sanitize(&mut self.mono, rate, at)?;
        if let Some(side) = &mut self.side {
            sanitize(&mut side.input, rate, at)?;
            side.ready.clear();
            side.resampler
                .push(&side.input, &mut side.ready)
                .map_err(DecodeError::Resample)?;
            (side.tap)(&side.ready);
            side.input.clear();
        }
        self.source_frames += self.mono.len() as u64;
        self.resampler
            .push(&self.mono, &mut self.ready)
            .map_err(DecodeError::Resample)
    }

    fn finish(&mut self) -> Result<(), DecodeError> {
        self.finished = true;
        self.resampler
            .finish(&mut self.ready)
            .map_err(DecodeError::Resample)?;
        if let Some(side) = &mut self.side {
            side.ready.clear();
            side.resampler
                .finish(&mut side.ready)
                .map_err(DecodeError::Resample)?;
            (side.tap)(&side.ready);
        }
        let got = self.decoded_seconds();
        if self.source_frames == 0 {
            let claim = self
                .info
                .declared_seconds
                .filter(|s| *s > 0.0)
                .map(|s| format!(" (the header claims {s:.1} s)"))
                .unwrap_or_default();
            return Err(DecodeError::NoSamples(claim));
        }
        if let Some(expected) = self.info.declared_seconds {
            // Encoder padding and priming make small differences normal.
            if got + 0.5 < expected * 0.98 {
                return Err(DecodeError::Truncated { expected, got });
            }
        }
        Ok(())
    }
}

/// Float PCM can hold NaN, infinity or absurd magnitudes; any of them turns the resampler's
/// FFT into NaNs (rubato then panics; found by fuzzing,
/// fuzz/seeds/audio_probe/regression-nan-float-pcm.seed). `at`: the first sample's frame.
fn sanitize(samples: &mut [f32], rate: u32, at: u64) -> Result<(), DecodeError> {
    for (i, s) in samples.iter_mut().enumerate() {
        if !s.is_finite() {
            return Err(DecodeError::Corrupt {
                at: (at + i as u64) as f64 / f64::from(rate.max(1)),
                detail: "a sample is not a number (NaN or infinity): the audio data is damaged"
                    .into(),
            });
        }
        *s = s.clamp(-MAX_AMPLITUDE, MAX_AMPLITUDE);
    }
    Ok(())
}

/// Names for codecs that containers can carry but no registered decoder handles.
fn unsupported_codec_name(id: symphonia::core::codecs::audio::AudioCodecId) -> String {
    use symphonia::core::codecs::audio::well_known::*;
    let known = [
        (CODEC_ID_AC3, "AC-3 (Dolby Digital)"),
        (CODEC_ID_EAC3, "E-AC-3 (Dolby Digital Plus)"),
        (CODEC_ID_AC4, "AC-4"),
        (CODEC_ID_TRUEHD, "Dolby TrueHD"),
        (CODEC_ID_DCA, "DTS"),
        (CODEC_ID_WMA, "WMA"),
        (CODEC_ID_SPEEX, "Speex"),
        (CODEC_ID_WAVPACK, "WavPack"),
        (CODEC_ID_MONKEYS_AUDIO, "Monkey's Audio"),
        (CODEC_ID_TTA, "TTA"),
        (CODEC_ID_COOK, "RealAudio Cook"),
        (CODEC_ID_ATRAC3, "ATRAC3"),
        (CODEC_ID_ATRAC3PLUS, "ATRAC3plus"),
        (CODEC_ID_ADPCM_G726, "G.726"),
    ];
    known
        .iter()
        .find(|(k, _)| *k == id)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| format!("with id {id}"))
}

/// Audio headers are binary; a text file's first bytes are printable UTF-8.
fn looks_like_text(head: &[u8]) -> bool {
    if head.len() < 16 {
        return false;
    }
    // ID3-tagged MP3 starts with printable "ID3"; other containers have binary magics.
    if head.starts_with(b"ID3") {
        return false;
    }
    let text = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A multi-byte character cut at the end of the sniffed bytes is still text.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    !text.is_empty() && text.chars().all(|c| !c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::looks_like_text;

    #[test]
    fn sniffs_text_but_not_audio_headers() {
        assert!(looks_like_text(b"hello, this is a plain text file\n"));
        assert!(looks_like_text(
            "caf\u{e9} au lait, tr\u{e8}s bien merci\n".as_bytes()
        ));
        assert!(!looks_like_text(
            b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00"
        ));
        assert!(!looks_like_text(
            b"ID3\x04\x00\x00\x00\x00\x00\x00 some tag text"
        ));
        assert!(!looks_like_text(b"short"));
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// A WAV header claiming a rate of billions of Hz once made the resampler allocate over
    /// a gigabyte; now it is refused with the reason (first byte: the fuzz target's hint).
    #[test]
    fn a_huge_declared_sample_rate_is_an_error_not_an_allocation() {
        let input = include_bytes!("../../fuzz/seeds/audio_probe/regression-oom-huge-rate.seed");
        let stream = Box::new(std::io::Cursor::new(input[1..].to_vec()));
        let err = AudioDecoder16k::open_stream(stream, Some("wav"))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("sample rate"), "{err}");
    }

    /// A float WAV whose samples include NaN once panicked inside the resampler's FFT; now
    /// the decode stops with an error that says the data is damaged.
    #[test]
    fn float_samples_that_are_not_numbers_are_an_error_not_a_panic() {
        let input = include_bytes!("../../fuzz/seeds/audio_probe/regression-nan-float-pcm.seed");
        let stream = Box::new(std::io::Cursor::new(input[1..].to_vec()));
        let mut decoder = AudioDecoder16k::open_stream(stream, Some("wav")).expect("a wav header");
        let mut buf = Vec::new();
        let err = loop {
            buf.clear();
            match decoder.read(&mut buf, 16_000) {
                Ok(0) => panic!("decoded to the end without an error"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("not a number"), "{err}");
    }

    /// Huge but finite float samples are bounded, not passed on to overflow the FFT.
    #[test]
    fn huge_float_samples_decode_to_bounded_finite_audio() {
        use crate::dataset::pcm::{mono_wav, WAV_FLOAT};
        // 44.1 kHz, so the samples go through the resampler's FFT.
        let samples: Vec<u8> = (0..8_000)
            .flat_map(|i| if i % 2 == 0 { 3.0e38f32 } else { -3.0e38 }.to_le_bytes())
            .collect();
        let wav = mono_wav(WAV_FLOAT, 44_100, 32, &samples);
        let stream = Box::new(std::io::Cursor::new(wav));
        let mut decoder = AudioDecoder16k::open_stream(stream, Some("wav")).expect("a wav");
        let mut all = Vec::new();
        let mut buf = Vec::new();
        while decoder.read(&mut buf, 16_000).expect("decodes") > 0 {
            all.append(&mut buf);
        }
        assert!(!all.is_empty());
        assert!(
            all.iter()
                .all(|s| s.is_finite() && s.abs() <= 2.0 * MAX_AMPLITUDE),
            "max {:?}",
            all.iter().map(|s| s.abs()).fold(0.0f32, f32::max)
        );
    }
}
