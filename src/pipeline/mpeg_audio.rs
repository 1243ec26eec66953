//! MPEG audio (MP1/MP2/MP3) frame boundaries. symphonia's decoder takes exactly one frame
//! per packet, and AVI muxers may put several frames in one chunk or split a frame across
//! two: [`Framer`] cuts the stream of chunk bytes back into frames.

/// A frame header's length in bytes and its number of samples per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSize {
    pub bytes: usize,
    pub samples: u64,
}

/// The size of the frame whose 4-byte header starts `head`; `None` when it is not a valid
/// header (or a free-format one, whose size the header does not say).
pub fn frame_size(head: &[u8]) -> Option<FrameSize> {
    let h = u32::from_be_bytes(head.get(..4)?.try_into().ok()?);
    if h >> 21 != 0x7ff {
        return None;
    }
    // 0: MPEG 2.5, 2: MPEG 2, 3: MPEG 1.
    let version = (h >> 19) & 3;
    // 1: layer III, 2: layer II, 3: layer I.
    let layer = (h >> 17) & 3;
    let bitrate_index = ((h >> 12) & 0xf) as usize;
    let rate_index = ((h >> 10) & 3) as usize;
    let padding = ((h >> 9) & 1) as usize;
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let mpeg1 = version == 3;
    let kbps: [u32; 14] = match (mpeg1, layer) {
        (true, 3) => [
            32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        (true, 2) => [
            32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        (true, _) => [
            32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
        (false, 3) => [
            32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        (false, _) => [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    };
    let bitrate = (kbps[bitrate_index - 1] * 1000) as usize;
    let rate = [44_100, 48_000, 32_000][rate_index] >> [2, 0, 1, 0][version as usize];
    let (bytes, samples) = match layer {
        3 => ((12 * bitrate / rate + padding) * 4, 384),
        2 => (144 * bitrate / rate + padding, 1152),
        _ if mpeg1 => (144 * bitrate / rate + padding, 1152),
        _ => (72 * bitrate / rate + padding, 576),
    };
    (bytes >= 4).then_some(FrameSize { bytes, samples })
}

/// Collects chunk bytes and hands out whole frames.
#[derive(Debug, Default)]
pub struct Framer {
    pending: Vec<u8>,
    /// Where the bytes not handed out yet start in `pending`: frames are taken by moving it,
    /// and the taken bytes are dropped once per `push` (a chunk of many small frames would
    /// otherwise shift the whole buffer once per frame).
    at: usize,
}

/// Bytes kept while looking for a frame before they are given up as not MPEG audio.
const MOST_PENDING: usize = 1 << 16;

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.drain(..self.at);
        self.at = 0;
        self.pending.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived; bytes before a frame header are dropped.
    pub fn next_frame(&mut self) -> Option<(Vec<u8>, u64)> {
        let rest = &self.pending[self.at..];
        let Some(start) =
            (0..rest.len().saturating_sub(3)).find(|&i| frame_size(&rest[i..]).is_some())
        else {
            if rest.len() > MOST_PENDING {
                self.at = self.pending.len();
            }
            return None;
        };
        let size = frame_size(&rest[start..])?;
        let frame = rest.get(start..start + size.bytes)?.to_vec();
        self.at += start + size.bytes;
        Some((frame, size.samples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_follow_the_standard() {
        // MPEG 1 layer III, 128 kb/s, 44.1 kHz, no padding: 417 bytes.
        let h = [0xff, 0xfb, 0x90, 0x00];
        assert_eq!(
            frame_size(&h),
            Some(FrameSize {
                bytes: 417,
                samples: 1152
            })
        );
        // With padding: 418.
        assert_eq!(frame_size(&[0xff, 0xfb, 0x92, 0x00]).unwrap().bytes, 418);
        // MPEG 2 layer III, 64 kb/s, 16 kHz: 72 * 64000 / 16000 = 288, 576 samples.
        assert_eq!(
            frame_size(&[0xff, 0xf3, 0x88, 0x00]),
            Some(FrameSize {
                bytes: 288,
                samples: 576
            })
        );
        assert_eq!(frame_size(&[0xff, 0xfb, 0x00, 0x00]), None, "free format");
        assert_eq!(frame_size(&[0x52, 0x49, 0x46, 0x46]), None);
    }

    #[test]
    fn frames_split_or_joined_across_chunks_come_out_whole() {
        let frame = |fill: u8| {
            let mut f = vec![fill; 417];
            f[..4].copy_from_slice(&[0xff, 0xfb, 0x90, 0x00]);
            f
        };
        let stream = [frame(1), frame(2), frame(3)].concat();
        let mut framer = Framer::default();
        framer.push(b"junk");
        framer.push(&stream[..300]);
        assert_eq!(framer.next_frame(), None);
        framer.push(&stream[300..]);
        for fill in 1..=3 {
            let (f, samples) = framer.next_frame().unwrap();
            assert_eq!((f.len(), f[4], samples), (417, fill, 1152));
        }
        assert_eq!(framer.next_frame(), None);

        // One chunk of many of the smallest frames (MPEG 2.5, 8 kb/s, 8 kHz: 72 bytes).
        let small: Vec<u8> = (0..5000)
            .flat_map(|_| {
                let mut f = vec![0u8; 72];
                f[..4].copy_from_slice(&[0xff, 0xe3, 0x18, 0x00]);
                f
            })
            .collect();
        framer.push(&small);
        let mut n = 0;
        while let Some((f, samples)) = framer.next_frame() {
            assert_eq!((f.len(), samples), (72, 576));
            n += 1;
        }
        assert_eq!(n, 5000);
    }
}
