//! The decoded 16 kHz mono audio of a job, kept as it streams past the transcriber (16-bit
//! PCM in a private spool file, 32 KB per second), so training segments are cut from the
//! very samples that were transcribed: no second decode, no re-download.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub const RATE: u32 = 16_000;

/// Collects samples handed to it; shared with the decoder's tap.
pub struct PcmSpool {
    out: BufWriter<File>,
    samples: u64,
    error: Option<std::io::Error>,
}

impl PcmSpool {
    /// A new spool file in `dir`, private to this user, removed when dropped.
    pub fn create(dir: &Path) -> std::io::Result<(Arc<Mutex<PcmSpool>>, tempfile::TempPath)> {
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".hotfolderd-pcm-")
            .tempfile_in(dir)?;
        let (file, path) = tmp.into_parts();
        let spool = PcmSpool {
            out: BufWriter::with_capacity(1 << 16, file),
            samples: 0,
            error: None,
        };
        Ok((Arc::new(Mutex::new(spool)), path))
    }

    pub fn push(&mut self, samples: &[f32]) {
        if self.error.is_some() {
            return;
        }
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        match self.out.write_all(&bytes) {
            Ok(()) => self.samples += samples.len() as u64,
            Err(e) => self.error = Some(e),
        }
    }

    /// Flushes; the number of samples kept, or the first write error.
    pub fn finish(&mut self) -> std::io::Result<u64> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.samples)
    }
}

/// A decoder tap that copies every sample into `spool`.
pub fn pcm_tap(spool: Arc<Mutex<PcmSpool>>) -> crate::pipeline::decode::Tap {
    Box::new(move |samples: &[f32]| {
        spool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(samples)
    })
}

/// Samples `[start, end)` (in seconds) of a spool file, as a 16 kHz mono 16-bit WAV.
pub fn wav_between(spool: &Path, start: f64, end: f64) -> std::io::Result<Vec<u8>> {
    let first = (start.max(0.0) * f64::from(RATE)).round() as u64;
    let last = (end.max(start) * f64::from(RATE)).round() as u64;
    let mut f = File::open(spool)?;
    let have = f.metadata()?.len() / 2;
    let (first, last) = (first.min(have), last.min(have));
    f.seek(SeekFrom::Start(first * 2))?;
    let mut pcm = vec![0u8; ((last - first) * 2) as usize];
    f.read_exact(&mut pcm)?;
    Ok(wav(&pcm))
}

/// A finished spool file read as a WAV stream (header, then the file), for decoding the
/// job's audio again without holding it in memory.
pub fn spool_as_wav(spool: &Path) -> std::io::Result<impl Read + Send + Sync> {
    let f = File::open(spool)?;
    // The RIFF size field is 36 + len and must fit in 32 bits.
    let len = f.metadata()?.len().min(u64::from(u32::MAX - 36)) as u32;
    Ok(std::io::Cursor::new(wav_header(WAV_PCM, RATE, 16, len)).chain(f))
}

/// A WAV file around 16 kHz mono 16-bit little-endian PCM.
pub fn wav(pcm: &[u8]) -> Vec<u8> {
    mono_wav(WAV_PCM, RATE, 16, pcm)
}

/// WAV format tags: integer PCM, IEEE float.
pub const WAV_PCM: u16 = 1;
pub const WAV_FLOAT: u16 = 3;

/// A mono WAV file around little-endian `samples` of `bits` bits in `format`.
pub fn mono_wav(format: u16, rate: u32, bits: u16, samples: &[u8]) -> Vec<u8> {
    let mut out = wav_header(format, rate, bits, samples.len() as u32);
    out.reserve_exact(samples.len());
    out.extend_from_slice(samples);
    out
}

/// The 44-byte header of a mono WAV file with `len` bytes of samples.
fn wav_header(format: u16, rate: u32, bits: u16, len: u32) -> Vec<u8> {
    let block = bits / 8;
    let mut out = Vec::with_capacity(44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&len.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_comes_back_as_a_wav_the_decoder_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, path) = PcmSpool::create(dir.path()).unwrap();
        let tone: Vec<f32> = (0..RATE * 3)
            .map(|i| (i as f32 * 0.05).sin() * 0.5)
            .collect();
        spool.lock().unwrap().push(&tone);
        assert_eq!(spool.lock().unwrap().finish().unwrap(), u64::from(RATE * 3));
        let wav = wav_between(&path, 1.0, 2.5).unwrap();
        assert_eq!(wav.len(), 44 + 24_000 * 2);
        let out = dir.path().join("x.wav");
        std::fs::write(&out, &wav).unwrap();
        let mut d = crate::pipeline::decode::AudioDecoder16k::open_path(&out).unwrap();
        let mut got = Vec::new();
        while d.read(&mut got, 4096).unwrap() > 0 {}
        assert_eq!(got.len(), 24_000);
        assert!((got[0] - tone[16_000]).abs() < 1e-3);
        // Past the end: clipped, not an error.
        assert_eq!(wav_between(&path, 2.5, 9.0).unwrap().len(), 44 + 8_000 * 2);
        // The whole spool decodes as a stream, sample for sample.
        let stream = Box::new(spool_as_wav(&path).unwrap());
        let mut d =
            crate::pipeline::decode::AudioDecoder16k::open_stream(stream, Some("wav")).unwrap();
        let mut all = Vec::new();
        while d.read(&mut all, 4096).unwrap() > 0 {}
        assert_eq!(all.len(), tone.len());
        assert!((all[20_000] - tone[20_000]).abs() < 1e-3);
    }
}
