//! DTW word timestamps: which of whisper.cpp's alignment-head presets fits a model file,
//! told by its shape (layers, vocabulary, mel bands) read from the ggml header.

use std::path::Path;

use whisper_rs::DtwModelPreset;

use crate::model::ggml::Hparams;

/// The preset for the model at `path`, or why there is none.
pub fn preset_for(path: &Path) -> Result<DtwModelPreset, String> {
    let model = crate::model::ggml::GgmlModel::open(path).map_err(|e| e.to_string())?;
    preset_of(&model.hparams)
}

/// whisper.cpp's presets by model shape. English-only models have 51864 tokens; large-v3
/// and its turbo have 128 mel bands (v1 and v2 share a shape: v2's heads are used).
pub fn preset_of(h: &Hparams) -> Result<DtwModelPreset, String> {
    let english = h.n_vocab == 51864;
    Ok(match (h.n_audio_layer, h.n_text_layer, english) {
        (4, 4, true) => DtwModelPreset::TinyEn,
        (4, 4, false) => DtwModelPreset::Tiny,
        (6, 6, true) => DtwModelPreset::BaseEn,
        (6, 6, false) => DtwModelPreset::Base,
        (12, 12, true) => DtwModelPreset::SmallEn,
        (12, 12, false) => DtwModelPreset::Small,
        (24, 24, true) => DtwModelPreset::MediumEn,
        (24, 24, false) => DtwModelPreset::Medium,
        (32, 32, false) if h.n_mels == 128 => DtwModelPreset::LargeV3,
        (32, 32, false) => DtwModelPreset::LargeV2,
        (32, 4, false) if h.n_mels == 128 => DtwModelPreset::LargeV3Turbo,
        (a, t, _) => {
            return Err(format!(
                "DTW word timestamps have no alignment-head preset for a model with {a} encoder and {t} decoder layers (whisper.cpp's presets: tiny to large-v3-turbo); leave dtw off"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_models_shape() {
        let h = |layers: (i32, i32), vocab: i32, mels: i32| Hparams {
            n_vocab: vocab,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: layers.0,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: layers.1,
            n_mels: mels,
            ftype: 1,
        };
        let name = |r: Result<DtwModelPreset, String>| format!("{:?}", r.unwrap());
        assert_eq!(name(preset_of(&h((4, 4), 51864, 80))), "TinyEn");
        assert_eq!(name(preset_of(&h((6, 6), 51865, 80))), "Base");
        assert_eq!(name(preset_of(&h((32, 4), 51866, 128))), "LargeV3Turbo");
        assert!(preset_of(&h((5, 5), 51865, 80))
            .unwrap_err()
            .contains("no alignment-head preset"));
    }
}
