//! The Hugging Face `tokenizer.json` of a Whisper model: its ordinary tokens are the same
//! byte-level BPE vocabulary the ggml file holds as raw bytes, so each can be checked
//! against the other, and its special tokens are completed from [`SpecialTokens`].

use serde_json::{json, Value};

use super::vocab;
use super::whisper_tokens::SpecialTokens;

/// The ordinary tokens (ids below `<|endoftext|>`) as raw bytes, in id order.
pub fn ordinary_tokens(tokenizer: &Value, eot: usize) -> Result<Vec<Vec<u8>>, String> {
    let vocab = tokenizer
        .pointer("/model/vocab")
        .and_then(Value::as_object)
        .ok_or("it has no model.vocab: not a byte-level BPE tokenizer.json")?;
    let table = vocab::byte_table();
    let mut tokens: Vec<Option<Vec<u8>>> = vec![None; eot];
    for (text, id) in vocab {
        let Some(id) = id.as_u64().map(|i| i as usize).filter(|i| *i < eot) else {
            continue;
        };
        let bytes = vocab::decode_token(&table, text)
            .map_err(|c| format!("token {text:?}: {c:?} is not a byte-level BPE character"))?;
        if let Some(slot) = tokens.get_mut(id) {
            *slot = Some(bytes);
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.ok_or_else(|| format!("it has no token with id {id}")))
        .collect()
}

/// Checks that `tokenizer` belongs to a model whose ggml vocabulary is `model_vocab`.
pub fn check_matches(tokenizer: &Value, model_vocab: &[Vec<u8>], eot: usize) -> Result<(), String> {
    let ours = ordinary_tokens(tokenizer, eot)?;
    if ours.len() != model_vocab.len() {
        return Err(format!(
            "it has {} ordinary tokens, the model {}",
            ours.len(),
            model_vocab.len()
        ));
    }
    match ours.iter().zip(model_vocab).position(|(a, b)| a != b) {
        Some(id) => Err(format!("token {id} differs from the model's")),
        None => Ok(()),
    }
}

/// Adds every special token the model has and the tokenizer lacks (older tokenizer.json
/// files stop at `<|notimestamps|>`, without the timestamp tokens).
pub fn complete_specials(tokenizer: &mut Value, specials: &SpecialTokens, n_vocab: usize) {
    let Some(added) = tokenizer
        .get_mut("added_tokens")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let known: std::collections::HashSet<u64> = added
        .iter()
        .filter_map(|t| t.get("id").and_then(Value::as_u64))
        .collect();
    for (content, id) in specials.all(n_vocab) {
        if !known.contains(&(id as u64)) {
            added.push(json!({
                "id": id,
                "content": content,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": true,
            }));
        }
    }
}
