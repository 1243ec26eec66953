//! Profiles: what a source decodes with. `[asr]` holds the defaults; a named
//! `[profiles.NAME]` (chosen with `profile = "NAME"`) and a source's own `[watch.asr]` /
//! `[s3.asr]` override them, in that order, key by key. Every decoding option of
//! `hotfolderd transcribe` has a key here, under the flag's name with `_` for `-`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Config;
use crate::pipeline::audio_track::AudioTrack;
use crate::pipeline::channels::Channels;
use crate::pipeline::render::Format;
use crate::pipeline::subtitles::Layout;
use crate::pipeline::transcribe::{AudioCtx, DecodeOptions};
use crate::pipeline::vad_model;

/// The decoding keys `[asr]` and profiles share (besides those `[asr]` always had).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Decoding {
    /// The languages detection may choose from (`language` is then "auto").
    pub languages: Option<Vec<String>>,
    /// With language "auto": detect the language of each stretch of speech.
    pub language_per_segment: Option<bool>,
    /// Initial prompt: vocabulary, spelling, style.
    pub prompt: Option<String>,
    /// Words to expect (names, jargon), put before the prompt as faster-whisper does.
    pub hotwords: Option<Vec<String>>,
    pub translate: Option<bool>,
    pub beam_size: Option<i32>,
    pub best_of: Option<i32>,
    pub temperature: Option<f32>,
    /// 0 turns temperature fallback off (the CLI's `--no-fallback`).
    pub temperature_inc: Option<f32>,
    pub entropy_thold: Option<f32>,
    pub logprob_thold: Option<f32>,
    pub no_speech_thold: Option<f32>,
    pub no_timestamps: Option<bool>,
    pub max_context: Option<i32>,
    pub suppress_nst: Option<bool>,
    pub keep_annotations: Option<bool>,
    pub window_seconds: Option<usize>,
    pub vad_threshold: Option<f32>,
    pub vad_min_speech_duration_ms: Option<i32>,
    pub vad_min_silence_duration_ms: Option<i32>,
    pub vad_max_speech_duration_s: Option<f32>,
    pub vad_speech_pad_ms: Option<i32>,
    pub vad_samples_overlap: Option<f32>,
    /// "mix" or "split" (each channel of a stereo file on its own).
    pub channels: Option<Channels>,
    /// With split channels: the speakers of channels 0 and 1.
    pub channel_names: Option<Vec<String>>,
    /// Who spoke when: label segments and words with their speaker (S1, S2, …).
    pub diarize: Option<bool>,
    /// With `diarize`: exactly this many speakers, or at least / at most this many.
    pub num_speakers: Option<usize>,
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// With `diarize`: the cosine similarity below which two groups of speech are different
    /// speakers.
    pub cluster_threshold: Option<f32>,
    /// With `diarize`: how alike (cosine) a speaker and a known voice must be for the
    /// speaker to take its name.
    pub match_threshold: Option<f32>,
    /// With `diarize`: "enrolled" (default) names speakers after enrolled voices; "folder"
    /// also after the speakers of the source's earlier inputs.
    pub speakers_from: Option<crate::diarize::run::SpeakersFrom>,
    /// The speaker model (default: `speaker-campplus.safetensors` beside the Whisper model,
    /// or in the models folders).
    pub speaker_model: Option<PathBuf>,
}

/// One layer of overrides: `[profiles.NAME]`, `[watch.asr]` or `[s3.asr]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Another model than `[asr] model`; loaded when first needed (`max_loaded_models`).
    pub model: Option<PathBuf>,
    pub language: Option<String>,
    pub vad: Option<bool>,
    pub vad_model: Option<PathBuf>,
    pub audio_ctx: Option<AudioCtx>,
    pub audio_track: Option<AudioTrack>,
    /// The outputs, where the source does not set its own `formats`.
    pub formats: Option<Vec<Format>>,
    /// `[subtitles]` keys to change for this profile (the others stay as `[subtitles]` has them).
    pub subtitles: Option<toml::Table>,
    #[serde(flatten)]
    pub decoding: Decoding,
}

/// A source's profile, resolved against `[asr]`.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The model, where the profile names another than `[asr] model` (else the serving one).
    pub model: Option<PathBuf>,
    /// The options, VAD model included (no stop token yet).
    pub opts: DecodeOptions,
    /// VAD is wanted but no model was found: the warning to log.
    pub vad_missing: Option<String>,
    pub formats: Option<Vec<Format>>,
}

impl Resolved {
    /// What the source's jobs are compared by when a reload asks whether it changed.
    pub fn fingerprint(&self) -> String {
        format!(
            "{:?}|{}|{:?}",
            self.model,
            serde_json::to_string(&self.opts).unwrap_or_default(),
            self.formats
        )
    }
}

impl Decoding {
    fn apply(&self, o: &mut DecodeOptions) {
        macro_rules! set {
            ($($key:ident),*) => {$(if let Some(v) = &self.$key { o.$key = v.clone(); })*};
        }
        set!(
            translate,
            beam_size,
            best_of,
            temperature,
            temperature_inc,
            entropy_thold,
            logprob_thold,
            no_speech_thold,
            no_timestamps,
            max_context,
            suppress_nst,
            keep_annotations,
            window_seconds,
            languages,
            language_per_segment,
            channels,
            channel_names
        );
        macro_rules! vad {
            ($($key:ident => $field:ident),*) => {$(if let Some(v) = self.$key { o.vad.$field = v; })*};
        }
        vad!(
            vad_threshold => threshold,
            vad_min_speech_duration_ms => min_speech_duration_ms,
            vad_min_silence_duration_ms => min_silence_duration_ms,
            vad_max_speech_duration_s => max_speech_duration_s,
            vad_speech_pad_ms => speech_pad_ms,
            vad_samples_overlap => samples_overlap
        );
    }

    /// What is wrong with these values: (key, why).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(langs) = &self.languages {
            if langs.is_empty() {
                out.push((
                    "languages",
                    "is empty: leave it out to detect any language".into(),
                ));
            }
            for l in langs {
                if !is_whisper_language(l) {
                    out.push((
                        "languages",
                        format!("has {l:?}, not a Whisper language code such as en, de, fr"),
                    ));
                }
            }
        }
        if let Some(b) = self.beam_size.filter(|b| !(1..=16).contains(b)) {
            out.push(("beam_size", format!("must be 1 (greedy) to 16, not {b}")));
        }
        if let Some(b) = self.best_of.filter(|b| !(1..=16).contains(b)) {
            out.push(("best_of", format!("must be 1 to 16, not {b}")));
        }
        for (key, v) in [
            ("temperature", self.temperature),
            ("temperature_inc", self.temperature_inc),
        ] {
            if let Some(t) = v.filter(|t| !t.is_finite() || *t < 0.0 || *t > 1.0) {
                out.push((key, format!("must be 0 to 1, not {t}")));
            }
        }
        if let Some(t) = self.vad_threshold.filter(|t| !(*t > 0.0 && *t < 1.0)) {
            out.push(("vad_threshold", format!("must be between 0 and 1, not {t}")));
        }
        if let Some(n) = self.channel_names.as_ref().filter(|n| n.len() > 2) {
            out.push((
                "channel_names",
                format!(
                    "has {} names: channels 0 and 1 are split, so at most 2",
                    n.len()
                ),
            ));
        }
        let wanted = crate::diarize::model::Wanted {
            num_speakers: self.num_speakers,
            min_speakers: self.min_speakers,
            max_speakers: self.max_speakers,
            threshold: self.cluster_threshold,
            match_threshold: self.match_threshold,
            ..Default::default()
        };
        if let Some(why) = wanted.problem() {
            out.push(("diarize", why));
        }
        if let Some(w) = self.window_seconds.filter(|w| !(30..=600).contains(w)) {
            out.push(("window_seconds", format!("must be 30 to 600, not {w}")));
        }
        out
    }
}

/// The diarization keys as the layers set them, each key overriding on its own.
#[derive(Default)]
struct Diarizing {
    on: bool,
    wanted: crate::diarize::model::Wanted,
}

impl Diarizing {
    fn apply(&mut self, d: &Decoding) {
        self.on = d.diarize.unwrap_or(self.on);
        let w = &mut self.wanted;
        w.model = d.speaker_model.clone().or(w.model.take());
        w.num_speakers = d.num_speakers.or(w.num_speakers);
        w.min_speakers = d.min_speakers.or(w.min_speakers);
        w.max_speakers = d.max_speakers.or(w.max_speakers);
        w.threshold = d.cluster_threshold.or(w.threshold);
        w.match_threshold = d.match_threshold.or(w.match_threshold);
        w.speakers_from = d.speakers_from.or(w.speakers_from);
    }
}

/// faster-whisper's hotwords: the words go before the prompt, in the previous-text context.
pub fn prompt_with_hotwords(hotwords: &[String], prompt: Option<&str>) -> Option<String> {
    let words = hotwords.join(", ");
    match (words.is_empty(), prompt.filter(|p| !p.is_empty())) {
        (true, p) => p.map(str::to_string),
        (false, None) => Some(words),
        (false, Some(p)) => Some(format!("{words}. {p}")),
    }
}

impl Profile {
    /// What is wrong with this layer: (key, why).
    fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .decoding
            .problems()
            .into_iter()
            .map(|(k, why)| (k.to_string(), why))
            .collect();
        if let Some(m) = &self.model {
            if !m.is_file() {
                out.push((
                    "model".into(),
                    format!("{} is not a model file (a relative path is taken from the working directory): import it with scripts/fetch-model.sh or `hotfolderd model import-ct2`", m.display()),
                ));
            }
        }
        if let Some(l) = &self.language {
            out.extend(language_problem(l).map(|why| ("language".to_string(), why)));
            if l != "auto" && self.decoding.languages.is_some() {
                out.push((
                    "language".into(),
                    format!("is {l:?} and `languages` is set too: set one (languages detects among them)"),
                ));
            }
        }
        if let (Some(true) | None, Some(p)) = (self.vad, &self.vad_model) {
            if let Err(e) = vad_model::check(p) {
                out.push(("vad_model".into(), e.to_string()));
            }
        }
        if self.formats.as_ref().is_some_and(|f| f.is_empty()) {
            out.push((
                "formats".into(),
                "is empty: no outputs would be written".into(),
            ));
        }
        if let Some(t) = &self.subtitles {
            match overlay_layout(&Layout::default(), t) {
                Ok(l) => out.extend(
                    l.problems()
                        .into_iter()
                        .map(|(k, why)| (format!("subtitles.{k}"), why)),
                ),
                Err(e) => out.push(("subtitles".into(), e)),
            }
        }
        out
    }
}

/// Whether `l` is a language whisper knows (or "auto").
pub fn language_problem(l: &str) -> Option<String> {
    (l != "auto" && !is_whisper_language(l))
        .then(|| format!("{l:?} is not a Whisper language code such as en, de, fr, or auto"))
}

/// Whether whisper knows language code `l` (looked up in its table; `whisper_lang_id` would
/// log an error for an unknown one).
pub fn is_whisper_language(l: &str) -> bool {
    (0..=whisper_rs::get_lang_max_id()).any(|id| whisper_rs::get_lang_str(id) == Some(l))
}

/// `base` with the keys of `table` changed.
fn overlay_layout(base: &Layout, table: &toml::Table) -> Result<Layout, String> {
    let mut merged = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    for (k, v) in table {
        merged.insert(k.clone(), v.clone());
    }
    Layout::deserialize(merged).map_err(|e| e.message().to_string())
}

impl Config {
    /// The options of a source that names profile `named` and overrides `inline`; `None`,
    /// `None`: `[asr]`'s own.
    pub fn resolve_profile(
        &self,
        named: Option<&str>,
        inline: Option<&Profile>,
    ) -> Result<Resolved, String> {
        let asr = &self.asr;
        let mut opts = DecodeOptions {
            threads: *asr.threads.get_ref(),
            language: asr.language.clone(),
            audio_ctx: asr.audio_ctx,
            subtitles: self.subtitles.get_ref().clone(),
            audio_track: asr.audio_track.clone(),
            dtw: asr.dtw,
            ..DecodeOptions::default()
        };
        asr.decoding.apply(&mut opts);
        // Each layer's prompt and hotwords replace those before it, each on its own; they
        // are joined once, at the end.
        let (mut prompt, mut hotwords) =
            (asr.decoding.prompt.clone(), asr.decoding.hotwords.clone());
        let mut layers: Vec<&Profile> = Vec::new();
        if let Some(name) = named {
            let p = self.profiles.get(name).ok_or_else(|| {
                format!(
                    "profile {name:?} is not defined (known: {})",
                    known(&self.profiles)
                )
            })?;
            layers.push(p);
        }
        layers.extend(inline);
        let mut diarize = Diarizing::default();
        diarize.apply(&asr.decoding);
        let (mut model, mut vad, mut vad_model, mut formats) = (
            None::<PathBuf>,
            asr.vad,
            asr.vad_model.as_ref().map(|p| p.get_ref().clone()),
            None,
        );
        for p in &layers {
            p.decoding.apply(&mut opts);
            diarize.apply(&p.decoding);
            prompt = p.decoding.prompt.clone().or(prompt);
            hotwords = p.decoding.hotwords.clone().or(hotwords);
            model = p.model.clone().or(model);
            vad = p.vad.unwrap_or(vad);
            vad_model = p.vad_model.clone().or(vad_model);
            formats = p.formats.clone().or(formats);
            if let Some(l) = &p.language {
                opts.language = l.clone();
                // A language set here wins over a set of them inherited.
                if p.decoding.languages.is_none() {
                    opts.languages.clear();
                }
            }
            if let Some(c) = p.audio_ctx {
                opts.audio_ctx = c;
            }
            if let Some(t) = &p.audio_track {
                opts.audio_track = t.clone();
            }

            if let Some(t) = &p.subtitles {
                opts.subtitles = overlay_layout(&opts.subtitles, t)?;
            }
        }
        opts.prompt =
            prompt_with_hotwords(hotwords.as_deref().unwrap_or_default(), prompt.as_deref());
        if !opts.languages.is_empty() {
            opts.language = "auto".into();
        }
        if opts.language_per_segment && opts.language != "auto" {
            return Err(format!(
                "language_per_segment detects each stretch's language: it needs language = \"auto\" (or languages), not {:?}",
                opts.language
            ));
        }
        let model = model.filter(|m| !same_file(m, &asr.model));
        let whisper = model.as_deref().unwrap_or(&asr.model);
        let mut vad_missing = None;
        opts.vad_model = match (vad, vad_model) {
            (false, _) => None,
            (true, Some(p)) => Some(p),
            (true, None) => vad_model::find(whisper).or_else(|| {
                vad_missing = Some(vad_model::not_found(whisper));
                None
            }),
        };
        if diarize.on {
            if opts.channels == Channels::Split {
                return Err("diarize tells voices apart on one channel, and channels = \"split\" already gives each channel its own speaker: use one of them".into());
            }
            if opts.no_timestamps {
                return Err(
                    "diarize places speakers by word times: it needs no_timestamps = false".into(),
                );
            }
            opts.diarize = Some(diarize.wanted.resolve(whisper)?);
        }
        Ok(Resolved {
            model,
            opts,
            vad_missing,
            formats,
        })
    }

    /// Every profile's problems, as (where, message): the named ones, and each source's.
    pub(super) fn profile_problems(&self) -> Vec<(ProfilePlace, String)> {
        let mut out = Vec::new();
        for (k, why) in self.asr.decoding.problems() {
            out.push((ProfilePlace::Asr, format!("asr.{k} {why}")));
        }
        if let Some(l) = language_problem(&self.asr.language) {
            out.push((ProfilePlace::Asr, format!("asr.language: {l}")));
        }
        if *self.asr.max_loaded_models.get_ref() < 1 {
            out.push((
                ProfilePlace::Asr,
                "asr.max_loaded_models must be at least 1".into(),
            ));
        }
        for (name, p) in &self.profiles {
            for (k, why) in p.problems() {
                out.push((ProfilePlace::Named, format!("profiles.{name}.{k} {why}")));
            }
        }
        let sources = self
            .watch
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("watch[{i}]"), w.path.span(), &w.profile, &w.asr))
            .chain(
                self.s3
                    .iter()
                    .enumerate()
                    .map(|(i, q)| (format!("s3[{i}]"), q.queue_url.span(), &q.profile, &q.asr)),
            );
        if let Err(why) = self.resolve_profile(None, None) {
            out.push((ProfilePlace::Asr, format!("asr: {why}")));
        }
        for (what, span, named, inline) in sources {
            for (k, why) in inline.iter().flat_map(Profile::problems) {
                out.push((
                    ProfilePlace::Source(span.clone()),
                    format!("{what}.asr.{k} {why}"),
                ));
            }
            let known_name = named
                .as_ref()
                .is_none_or(|n| self.profiles.contains_key(n.get_ref()));
            if known_name {
                let name = named.as_ref().map(|n| n.get_ref().as_str());
                match self.resolve_profile(name, inline.as_ref()) {
                    Err(why) => {
                        out.push((ProfilePlace::Source(span.clone()), format!("{what}: {why}")))
                    }
                    Ok(r) => {
                        for (key, why) in resolved_problems(&r) {
                            // Said already for this source, `[asr]` or a named profile?
                            let said = out.iter().any(|(_, m)| {
                                m.contains(&why)
                                    && (m.starts_with(&what)
                                        || !(m.starts_with("watch[") || m.starts_with("s3[")))
                            });
                            if !said {
                                out.push((
                                    ProfilePlace::Source(span.clone()),
                                    format!("{what}: {key} {why}"),
                                ));
                            }
                        }
                    }
                }
            }
            if let Some(n) = named {
                if !self.profiles.contains_key(n.get_ref()) {
                    out.push((
                        ProfilePlace::Source(n.span()),
                        format!(
                            "{what}.profile {:?} is not defined (known: {})",
                            n.get_ref(),
                            known(&self.profiles)
                        ),
                    ));
                }
            }
        }
        out
    }
}

/// What is wrong only once the layers are combined: a VAD model inherited from where VAD
/// was off, subtitle limits that clash across layers.
/// Each as (what, why): `why` alone is compared with problems already found in the layers.
fn resolved_problems(r: &Resolved) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(p) = &r.opts.vad_model {
        if let Err(e) = vad_model::check(p) {
            out.push(("vad_model:".into(), e.to_string()));
        }
    }
    for (k, why) in r.opts.subtitles.problems() {
        out.push((format!("subtitles.{k}"), why));
    }
    out
}

/// Whether two paths name one file (`./m.bin`, `m.bin` and its absolute path do).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    a == b
        || matches!(
            (a.canonicalize(), b.canonicalize()),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Where a profile problem is reported.
pub(super) enum ProfilePlace {
    Asr,
    Named,
    Source(std::ops::Range<usize>),
}

fn known(profiles: &BTreeMap<String, Profile>) -> String {
    if profiles.is_empty() {
        "none; define one as [profiles.NAME]".into()
    } else {
        profiles.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}
