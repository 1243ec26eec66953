//! CTranslate2's `vocabulary.txt` holds GPT-2 byte-level BPE tokens (bytes mapped to printable
//! code points, `Ġ` for a space). whisper.cpp wants the raw bytes, and only the ordinary tokens:
//! it appends `<|endoftext|>` and the other specials itself.

use std::collections::HashMap;

/// GPT-2's `bytes_to_unicode`, inverted: printable code point → byte.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u32..256 {
        let cp = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        if let (Some(c), Ok(byte)) = (char::from_u32(cp), u8::try_from(b)) {
            map.insert(c, byte);
        }
    }
    map
}

/// One byte-level BPE token's raw bytes, or the first character that is not one.
pub fn decode_token(table: &HashMap<char, u8>, token: &str) -> Result<Vec<u8>, char> {
    token
        .chars()
        .map(|c| table.get(&c).copied().ok_or(c))
        .collect()
}

/// The table [`decode_token`] needs.
pub fn byte_table() -> HashMap<char, u8> {
    unicode_to_byte()
}

/// Decodes the vocabulary lines up to (not including) `<|endoftext|>`.
/// Lines are split on `\n` only: a token may itself be `\r`-like after decoding.
pub fn decode_vocabulary(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let table = unicode_to_byte();
    let mut tokens = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if line == "<|endoftext|>" {
            return Ok(tokens);
        }
        let bytes = decode_token(&table, line)
            .map_err(|c| format!("line {}: {c:?} is not a byte-level BPE character", i + 1))?;
        tokens.push(bytes);
    }
    Err("no <|endoftext|> token: this is not a Whisper vocabulary".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_byte_level_tokens() {
        let v =
            decode_vocabulary("!\nĠthe\nĊ\nÃ©\n\n<|endoftext|>\n<|startoftranscript|>").unwrap();
        assert_eq!(v[0], b"!");
        assert_eq!(v[1], b" the");
        assert_eq!(v[2], b"\n");
        assert_eq!(v[3], "é".as_bytes());
        assert_eq!(v[4], b"");
        assert_eq!(v.len(), 5);
    }

    #[test]
    fn every_byte_has_a_code_point() {
        let table = unicode_to_byte();
        assert_eq!(table.len(), 256);
        let mut bytes: Vec<u8> = table.values().copied().collect();
        bytes.sort();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
    }

    #[test]
    fn rejects_non_vocabularies() {
        assert!(decode_vocabulary("hello\nworld").is_err());
        assert!(decode_vocabulary("a b\n<|endoftext|>").is_err());
    }
}
