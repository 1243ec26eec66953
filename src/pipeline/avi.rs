//! An AVI demuxer for symphonia, which has none: RIFF `AVI ` with its stream headers
//! (`hdrl`/`strl`: `strh`, and `strf`'s WAVEFORMATEX for audio) and the interleaved `movi`
//! chunks, including OpenDML's `RIFF AVIX` extensions past 1 GB. Each audio stream is a
//! track; video and index chunks are skipped. PCM, A-law/µ-law, MP2/MP3 (cut into frames)
//! and AAC tracks decode; other codecs are tracks without a decoder, so choosing one is a
//! clear error. Reading is front to back: seeking is not offered.

use std::collections::VecDeque;

use symphonia::core::audio::{Channels, Position};
use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{AudioCodecId, AudioCodecParameters, CODEC_ID_NULL_AUDIO};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::{decode_error, seek_error, Error, Result, SeekErrorKind};
use symphonia::core::formats::prelude::*;
use symphonia::core::formats::probe::{
    ProbeDataMatchSpec, ProbeFormatData, ProbeableFormat, Score, Scoreable,
};
use symphonia::core::formats::well_known::FORMAT_ID_AVI;
use symphonia::core::io::{MediaSourceStream, ReadBytes, ScopedStream};
use symphonia::core::meta::{Metadata, MetadataLog};

use super::mpeg_audio::Framer;

const AVI_FORMAT_INFO: FormatInfo = FormatInfo {
    format: FORMAT_ID_AVI,
    short_name: "avi",
    long_name: "Audio Video Interleave",
};

/// The largest audio chunk read (a second of 8-channel 192 kHz float is 6 MiB): a larger
/// claim is a damaged file, not a reason to allocate gigabytes.
const MOST_CHUNK: u32 = 16 << 20;
/// Streams a `movi` chunk id can name (`00` to `99`).
const MOST_STREAMS: usize = 100;
/// The largest header chunk (`strf`, `strh`) read whole.
const MOST_HEADER: u32 = 1 << 20;

/// How an audio stream's chunks become packets.
enum Framing {
    /// Whole sample frames of `block_align` bytes each.
    Pcm { block_align: u32 },
    /// MPEG audio frames, cut from the chunks' bytes.
    Mpeg(Framer),
    /// One codec frame of this many samples per chunk (AAC: 1024).
    PerChunk { samples: u64 },
}

struct AudioStream {
    track_id: u32,
    framing: Framing,
    next_ts: u64,
}

/// What `strh` and `strf` said of one stream.
#[derive(Default)]
struct StreamHeader {
    kind: [u8; 4],
    scale: u32,
    rate: u32,
    length: u32,
    format: Option<WaveFormat>,
}

/// The fields of WAVEFORMATEX used here.
struct WaveFormat {
    tag: u16,
    channels: u16,
    sample_rate: u32,
    block_align: u16,
    bits: u16,
    extra: Vec<u8>,
}

pub struct AviReader<'s> {
    reader: MediaSourceStream<'s>,
    media_info: MediaInfo,
    tracks: Vec<Track>,
    metadata: MetadataLog,
    /// By AVI stream number; `None` for streams that are not audio.
    streams: Vec<Option<AudioStream>>,
    ready: VecDeque<Packet>,
}

fn padded(size: u32) -> u64 {
    u64::from(size) + u64::from(size & 1)
}

impl<'s> AviReader<'s> {
    pub fn try_new(mut mss: MediaSourceStream<'s>, _opts: FormatOptions) -> Result<Self> {
        if mss.read_quad_bytes()? != *b"RIFF" {
            return decode_error("avi: not a RIFF file");
        }
        mss.read_u32()?;
        if mss.read_quad_bytes()? != *b"AVI " {
            return decode_error("avi: not an AVI file");
        }
        let mut headers = Vec::new();
        // The headers come first; packets start inside the first `movi` list.
        loop {
            let id = mss.read_quad_bytes()?;
            let size = mss.read_u32()?;
            if id == *b"LIST" {
                let list = mss.read_quad_bytes()?;
                match &list {
                    b"movi" => break,
                    b"hdrl" => read_hdrl(&mut mss, size.saturating_sub(4), &mut headers)?,
                    _ => mss.ignore_bytes(padded(size.saturating_sub(4)))?,
                }
            } else {
                mss.ignore_bytes(padded(size))?;
            }
        }
        let mut tracks = Vec::new();
        let mut streams = Vec::new();
        for (number, h) in headers.into_iter().enumerate() {
            let audio = match (&h.kind, &h.format) {
                (b"auds", Some(f)) => Some((track_of(number as u32, &h, f), framing(f))),
                _ => None,
            };
            streams.push(audio.map(|(track, framing)| {
                let track_id = track.id;
                tracks.push(track);
                AudioStream {
                    track_id,
                    framing,
                    next_ts: 0,
                }
            }));
        }
        Ok(AviReader {
            reader: mss,
            media_info: MediaInfo::from_tracks(&tracks),
            tracks,
            metadata: MetadataLog::default(),
            streams,
            ready: VecDeque::new(),
        })
    }

    /// Turns one audio chunk into packets.
    fn take_chunk(&mut self, id: &[u8; 4], data: Box<[u8]>) {
        let Some(stream) = audio_stream(&mut self.streams, id) else {
            return;
        };
        let mut out = Vec::new();
        match &mut stream.framing {
            Framing::Pcm { block_align } => {
                let frames = data.len() as u64 / u64::from((*block_align).max(1));
                out.push((data, frames));
            }
            Framing::PerChunk { samples } => out.push((data, *samples)),
            Framing::Mpeg(framer) => {
                framer.push(&data);
                while let Some((frame, samples)) = framer.next_frame() {
                    out.push((frame.into_boxed_slice(), samples));
                }
            }
        }
        for (data, frames) in out {
            let ts = Timestamp::from(i64::try_from(stream.next_ts).unwrap_or(i64::MAX));
            stream.next_ts = stream.next_ts.saturating_add(frames);
            self.ready.push_back(Packet::new(
                stream.track_id,
                ts,
                Duration::from(frames),
                data,
            ));
        }
    }
}

/// The audio stream a `movi` chunk id (`01wb`) belongs to.
fn audio_stream<'a>(
    streams: &'a mut [Option<AudioStream>],
    id: &[u8; 4],
) -> Option<&'a mut AudioStream> {
    if &id[2..] != b"wb" || !id[..2].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = usize::from(id[0] - b'0') * 10 + usize::from(id[1] - b'0');
    streams.get_mut(number)?.as_mut()
}

/// Reads a `hdrl` list's `strl` lists (one per stream, in stream-number order).
fn read_hdrl(
    mss: &mut MediaSourceStream<'_>,
    len: u32,
    headers: &mut Vec<StreamHeader>,
) -> Result<()> {
    let end = mss.pos() + u64::from(len);
    while mss.pos() + 8 <= end {
        let id = mss.read_quad_bytes()?;
        let size = mss.read_u32()?;
        if id == *b"LIST" && size >= 4 {
            let list = mss.read_quad_bytes()?;
            // Chunk ids number streams 00 to 99: more headers could never be read from.
            if list == *b"strl" && headers.len() < MOST_STREAMS {
                headers.push(read_strl(mss, size - 4)?);
            } else {
                mss.ignore_bytes(padded(size - 4))?;
            }
        } else {
            mss.ignore_bytes(padded(size))?;
        }
    }
    if mss.pos() < end {
        mss.ignore_bytes(end - mss.pos())?;
    }
    Ok(())
}

fn read_strl(mss: &mut MediaSourceStream<'_>, len: u32) -> Result<StreamHeader> {
    let end = mss.pos() + u64::from(len);
    let mut h = StreamHeader::default();
    while mss.pos() + 8 <= end {
        let id = mss.read_quad_bytes()?;
        let size = mss.read_u32()?;
        let wanted = (id == *b"strh" && size >= 36) || id == *b"strf";
        if !wanted || size > MOST_HEADER {
            mss.ignore_bytes(padded(size))?;
            continue;
        }
        let body = mss.read_boxed_slice_exact(size as usize)?;
        if size & 1 == 1 {
            mss.ignore_bytes(1)?;
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        if id == *b"strh" {
            h.kind.copy_from_slice(&body[..4]);
            h.scale = u32_at(20);
            h.rate = u32_at(24);
            h.length = u32_at(32);
        } else {
            h.format = wave_format(&body);
        }
    }
    if mss.pos() < end {
        mss.ignore_bytes(end - mss.pos())?;
    }
    Ok(h)
}

/// WAVEFORMATEX (or the older WAVEFORMAT / PCMWAVEFORMAT, without `cbSize`).
fn wave_format(b: &[u8]) -> Option<WaveFormat> {
    let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let mut f = WaveFormat {
        tag: u16_at(0)?,
        channels: u16_at(2)?,
        sample_rate: u32::from_le_bytes(b.get(4..8)?.try_into().ok()?),
        block_align: u16_at(12)?,
        bits: u16_at(14).unwrap_or(0),
        extra: Vec::new(),
    };
    if let Some(extra_len) = u16_at(16) {
        let end = (18 + usize::from(extra_len)).min(b.len());
        f.extra = b[18.min(end)..end].to_vec();
    }
    // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
    if f.tag == 0xfffe && f.extra.len() >= 8 {
        f.tag = u16::from_le_bytes([f.extra[6], f.extra[7]]);
    }
    Some(f)
}

/// The codec a WAVEFORMATEX tag names (`None`: no decoder here).
fn codec_of(f: &WaveFormat) -> Option<AudioCodecId> {
    Some(match (f.tag, f.bits) {
        (0x0001, 8) => CODEC_ID_PCM_U8,
        (0x0001, 16) => CODEC_ID_PCM_S16LE,
        (0x0001, 24) => CODEC_ID_PCM_S24LE,
        (0x0001, 32) => CODEC_ID_PCM_S32LE,
        (0x0003, 32) => CODEC_ID_PCM_F32LE,
        (0x0003, 64) => CODEC_ID_PCM_F64LE,
        (0x0006, _) => CODEC_ID_PCM_ALAW,
        (0x0007, _) => CODEC_ID_PCM_MULAW,
        (0x0050, _) => CODEC_ID_MP2,
        (0x0055, _) => CODEC_ID_MP3,
        (0x00ff, _) => CODEC_ID_AAC,
        _ => return None,
    })
}

fn framing(f: &WaveFormat) -> Framing {
    match f.tag {
        0x0050 | 0x0055 => Framing::Mpeg(Framer::default()),
        0x00ff => Framing::PerChunk { samples: 1024 },
        _ => Framing::Pcm {
            block_align: u32::from(f.block_align),
        },
    }
}

fn track_of(number: u32, h: &StreamHeader, f: &WaveFormat) -> Track {
    let mut params = AudioCodecParameters::new();
    params.for_codec(codec_of(f).unwrap_or(CODEC_ID_NULL_AUDIO));
    if f.sample_rate > 0 {
        params.with_sample_rate(f.sample_rate);
    }
    if f.channels > 0 {
        let channels = Position::from_count(u32::from(f.channels))
            .map_or(Channels::Discrete(f.channels), Channels::Positioned);
        params.with_channels(channels);
    }
    if f.bits > 0 && matches!(f.tag, 0x0001 | 0x0003) {
        params.with_bits_per_sample(u32::from(f.bits));
    }
    if !f.extra.is_empty() && f.tag == 0x00ff {
        params.with_extra_data(f.extra.clone().into_boxed_slice());
    }
    let mut track = Track::new(number);
    track.with_codec_params(CodecParameters::Audio(params));
    // `length` counts units of `scale / rate` seconds.
    if h.rate > 0 && f.sample_rate > 0 {
        let seconds = f64::from(h.length) * f64::from(h.scale) / f64::from(h.rate);
        track.with_num_frames((seconds * f64::from(f.sample_rate)).round() as u64);
    }
    track
}

impl Scoreable for AviReader<'_> {
    fn score(mut src: ScopedStream<&mut MediaSourceStream<'_>>) -> Result<Score> {
        let riff = src.read_quad_bytes()?;
        src.ignore_bytes(4)?;
        let form = src.read_quad_bytes()?;
        Ok(match (&riff, &form) {
            (b"RIFF", b"AVI ") => Score::Supported(255),
            _ => Score::Unsupported,
        })
    }
}

impl ProbeableFormat<'_> for AviReader<'_> {
    fn try_probe_new(
        mss: MediaSourceStream<'_>,
        opts: FormatOptions,
    ) -> Result<Box<dyn FormatReader + '_>> {
        Ok(Box::new(AviReader::try_new(mss, opts)?))
    }

    fn probe_data() -> &'static [ProbeFormatData] {
        &[ProbeFormatData {
            spec: ProbeDataMatchSpec {
                extensions: &["avi"],
                mime_types: &["video/x-msvideo", "video/avi"],
                markers: &[b"RIFF"],
            },
            info: AVI_FORMAT_INFO,
        }]
    }
}

impl FormatReader for AviReader<'_> {
    fn format_info(&self) -> &FormatInfo {
        &AVI_FORMAT_INFO
    }

    fn media_info(&self) -> &MediaInfo {
        &self.media_info
    }

    fn metadata(&mut self) -> Metadata<'_> {
        self.metadata.metadata()
    }

    fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    fn seek(&mut self, _mode: SeekMode, _to: SeekTo) -> Result<SeekedTo> {
        seek_error(SeekErrorKind::Unseekable)
    }

    fn next_packet(&mut self) -> Result<Option<Packet>> {
        loop {
            if let Some(p) = self.ready.pop_front() {
                return Ok(Some(p));
            }
            let (id, size) = match (self.reader.read_quad_bytes(), self.reader.read_u32()) {
                (Ok(id), Ok(size)) => (id, size),
                // The end of the file (a truncated last chunk header included).
                (Err(_), _) | (_, Err(_)) => return Ok(None),
            };
            match &id {
                // Lists whose chunks are packets: descend into them.
                b"LIST" | b"RIFF" => {
                    let form = self.reader.read_quad_bytes()?;
                    if !matches!(&form, b"movi" | b"rec " | b"AVIX") {
                        self.reader.ignore_bytes(padded(size.saturating_sub(4)))?;
                    }
                }
                _ if audio_stream(&mut self.streams, &id).is_some() => {
                    if size > MOST_CHUNK {
                        return decode_error("avi: an audio chunk larger than 16 MiB");
                    }
                    let data = match self.reader.read_boxed_slice_exact(size as usize) {
                        Ok(d) => d,
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                        Err(e) => return Err(Error::IoError(e)),
                    };
                    if size & 1 == 1 {
                        // A missing pad byte at the very end is no loss.
                        let _ = self.reader.ignore_bytes(1);
                    }
                    self.take_chunk(&id, data);
                }
                _ => {
                    if self.reader.ignore_bytes(padded(size)).is_err() {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn into_inner<'s>(self: Box<Self>) -> MediaSourceStream<'s>
    where
        Self: 's,
    {
        self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphonia::core::io::MediaSourceStream;

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend_from_slice(&(body.len() as u32).to_le_bytes());
        c.extend_from_slice(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn list(kind: &[u8; 4], form: &[u8; 4], parts: &[Vec<u8>]) -> Vec<u8> {
        let mut body = form.to_vec();
        for p in parts {
            body.extend_from_slice(p);
        }
        chunk(kind, &body)
    }

    fn strh(kind: &[u8; 4], scale: u32, rate: u32, length: u32) -> Vec<u8> {
        let mut b = vec![0u8; 56];
        b[..4].copy_from_slice(kind);
        b[20..24].copy_from_slice(&scale.to_le_bytes());
        b[24..28].copy_from_slice(&rate.to_le_bytes());
        b[32..36].copy_from_slice(&length.to_le_bytes());
        chunk(b"strh", &b)
    }

    /// 16-bit mono PCM at 8 kHz.
    fn pcm_format() -> Vec<u8> {
        let mut f = Vec::new();
        for v in [1u16, 1] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&8000u32.to_le_bytes());
        f.extend_from_slice(&16000u32.to_le_bytes());
        for v in [2u16, 16, 0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        chunk(b"strf", &f)
    }

    /// A video stream and a PCM stream; audio in plain chunks, in a `rec ` list and in an
    /// OpenDML `AVIX` continuation, with video, index and odd-sized chunks between.
    fn file(audio: &[&[u8]]) -> Vec<u8> {
        let hdrl = list(
            b"LIST",
            b"hdrl",
            &[
                chunk(b"avih", &[0; 56]),
                list(
                    b"LIST",
                    b"strl",
                    &[strh(b"vids", 1, 5, 20), chunk(b"strf", &[0; 40])],
                ),
                list(
                    b"LIST",
                    b"strl",
                    &[
                        strh(b"auds", 2, 16000, 4000),
                        pcm_format(),
                        chunk(b"strn", b"English\0"),
                    ],
                ),
            ],
        );
        let movi = list(
            b"LIST",
            b"movi",
            &[
                chunk(b"00dc", &[7; 33]),
                chunk(b"01wb", audio[0]),
                list(
                    b"LIST",
                    b"rec ",
                    &[chunk(b"00dc", &[7; 5]), chunk(b"01wb", audio[1])],
                ),
                chunk(b"ix01", &[0; 24]),
            ],
        );
        let mut riff = list(
            b"RIFF",
            b"AVI ",
            &[
                hdrl,
                chunk(b"JUNK", &[0; 3]),
                movi,
                chunk(b"idx1", &[0; 16]),
            ],
        );
        let avix = list(
            b"RIFF",
            b"AVIX",
            &[list(
                b"LIST",
                b"movi",
                &[chunk(b"01wb", audio[2]), chunk(b"00dc", &[7; 9])],
            )],
        );
        riff.extend(avix);
        riff
    }

    #[test]
    fn audio_chunks_come_out_in_order_and_video_is_skipped() {
        let audio: [&[u8]; 3] = [&[1, 0, 2, 0], &[3, 0, 4, 0, 5, 0], &[6, 0]];
        let bytes = file(&audio);
        let mss = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
        let mut avi = AviReader::try_new(mss, FormatOptions::default()).unwrap();
        assert_eq!(avi.tracks().len(), 1);
        let track = &avi.tracks()[0];
        assert_eq!(track.id, 1, "the AVI stream number");
        // 4000 units of 2/16000 s: half a second of 8 kHz.
        assert_eq!(track.num_frames, Some(4000));
        let mut got = Vec::new();
        let mut ts = Vec::new();
        while let Some(p) = avi.next_packet().unwrap() {
            assert_eq!(p.track_id, 1);
            ts.push((p.pts, p.dur));
            got.extend_from_slice(&p.data);
        }
        assert_eq!(got, audio.concat());
        let frames: Vec<(i64, u64)> = ts.iter().map(|(t, d)| (t.get(), d.get())).collect();
        assert_eq!(frames, vec![(0, 2), (2, 3), (5, 1)]);
    }

    #[test]
    fn other_riff_forms_are_not_avi() {
        let wav = chunk(b"RIFF", b"WAVEfmt ");
        let mss = MediaSourceStream::new(Box::new(std::io::Cursor::new(wav)), Default::default());
        assert!(AviReader::try_new(mss, FormatOptions::default()).is_err());
    }
}
