//! The audio front end: probing and decoding any bytes (with each extension hint the
//! daemon accepts) must end in samples or a decode error, never a panic or a hang.
#![no_main]
use hotfolderd::pipeline::decode::AudioDecoder16k;
use libfuzzer_sys::fuzz_target;

const HINTS: [Option<&str>; 7] = [
    None,
    Some("wav"),
    Some("mp3"),
    Some("ogg"),
    Some("m4a"),
    Some("flac"),
    Some("avi"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let hint = HINTS[usize::from(pick) % HINTS.len()];
    let stream = Box::new(std::io::Cursor::new(bytes.to_vec()));
    if let Ok(mut decoder) = AudioDecoder16k::open_stream(stream, hint) {
        let mut buf = Vec::new();
        // A bounded amount: hostile headers may claim hours of audio.
        for _ in 0..64 {
            buf.clear();
            match decoder.read(&mut buf, 16_000) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
});
