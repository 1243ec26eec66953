//! One table of Whisper's tensors: each one's ggml name (OpenAI's, as whisper.cpp loads
//! them), its Hugging Face transformers name, and how ggml stores it. `export-hf` and
//! `import-hf` both walk it, so the two directions cannot drift apart.

/// What a tensor is, which decides how ggml stores it (as whisper.cpp's loader expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 2-D weight matrices: the model's weight type.
    Matrix,
    /// Convolution kernels: f16 unless the whole model is f32.
    Conv,
    /// Convolution biases: ggml holds them as `[n, 1]`, transformers as `[n]`.
    ConvBias,
    /// Biases, norms, positional embeddings: always f32.
    Float,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub ggml: String,
    pub hf: String,
    pub kind: Kind,
}

/// Every tensor of a model with these layer counts, in the order the importers write them.
/// Whisper's attention key has no bias (transformers' `k_proj` has none either).
pub fn tensors(audio_layers: usize, text_layers: usize) -> Vec<Tensor> {
    let mut out = Vec::new();
    let mut add = |ggml: String, hf: String, kind| out.push(Tensor { ggml, hf, kind });
    let weight_bias = |add: &mut dyn FnMut(String, String, Kind), g: &str, h: &str, kind| {
        add(format!("{g}.weight"), format!("{h}.weight"), kind);
        add(format!("{g}.bias"), format!("{h}.bias"), Kind::Float);
    };
    add(
        "encoder.positional_embedding".into(),
        "model.encoder.embed_positions.weight".into(),
        Kind::Float,
    );
    for c in ["conv1", "conv2"] {
        add(
            format!("encoder.{c}.weight"),
            format!("model.encoder.{c}.weight"),
            Kind::Conv,
        );
        add(
            format!("encoder.{c}.bias"),
            format!("model.encoder.{c}.bias"),
            Kind::ConvBias,
        );
    }
    let block = |add: &mut dyn FnMut(String, String, Kind), g: String, h: String, cross| {
        weight_bias(
            add,
            &format!("{g}.attn_ln"),
            &format!("{h}.self_attn_layer_norm"),
            Kind::Float,
        );
        attention(add, &format!("{g}.attn"), &format!("{h}.self_attn"));
        if cross {
            weight_bias(
                add,
                &format!("{g}.cross_attn_ln"),
                &format!("{h}.encoder_attn_layer_norm"),
                Kind::Float,
            );
            attention(
                add,
                &format!("{g}.cross_attn"),
                &format!("{h}.encoder_attn"),
            );
        }
        weight_bias(
            add,
            &format!("{g}.mlp_ln"),
            &format!("{h}.final_layer_norm"),
            Kind::Float,
        );
        weight_bias(
            add,
            &format!("{g}.mlp.0"),
            &format!("{h}.fc1"),
            Kind::Matrix,
        );
        weight_bias(
            add,
            &format!("{g}.mlp.2"),
            &format!("{h}.fc2"),
            Kind::Matrix,
        );
    };
    for i in 0..audio_layers {
        block(
            &mut add,
            format!("encoder.blocks.{i}"),
            format!("model.encoder.layers.{i}"),
            false,
        );
    }
    weight_bias(
        &mut add,
        "encoder.ln_post",
        "model.encoder.layer_norm",
        Kind::Float,
    );
    add(
        "decoder.token_embedding.weight".into(),
        "model.decoder.embed_tokens.weight".into(),
        Kind::Matrix,
    );
    for i in 0..text_layers {
        block(
            &mut add,
            format!("decoder.blocks.{i}"),
            format!("model.decoder.layers.{i}"),
            true,
        );
    }
    weight_bias(
        &mut add,
        "decoder.ln",
        "model.decoder.layer_norm",
        Kind::Float,
    );
    add(
        "decoder.positional_embedding".into(),
        "model.decoder.embed_positions.weight".into(),
        Kind::Float,
    );
    out
}

fn attention(add: &mut dyn FnMut(String, String, Kind), g: &str, h: &str) {
    for (gp, hp, bias) in [
        ("query", "q_proj", true),
        ("key", "k_proj", false),
        ("value", "v_proj", true),
        ("out", "out_proj", true),
    ] {
        add(
            format!("{g}.{gp}.weight"),
            format!("{h}.{hp}.weight"),
            Kind::Matrix,
        );
        if bias {
            add(
                format!("{g}.{gp}.bias"),
                format!("{h}.{hp}.bias"),
                Kind::Float,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_count_as_whisper_has_them() {
        let t = tensors(4, 4);
        // 5 stem + 15 per encoder block + 2 + 1 + 24 per decoder block + 2 + 1.
        assert_eq!(t.len(), 5 + 4 * 15 + 2 + 1 + 4 * 24 + 2 + 1);
        let mut names: Vec<&str> = t.iter().map(|t| t.hf.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), t.len());
    }
}
