//! What a client asked for with an upload, as the journal keeps it beside the input: the
//! worker runs the job from this after any restart, and the reply is shaped from it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::pipeline::transcribe::DecodeOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Transcribe,
    Translate,
}

/// OpenAI's `response_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

impl ResponseFormat {
    fn parse(s: &str) -> Option<ResponseFormat> {
        Some(match s {
            "json" => ResponseFormat::Json,
            "text" => ResponseFormat::Text,
            "srt" => ResponseFormat::Srt,
            "verbose_json" => ResponseFormat::VerboseJson,
            "vtt" => ResponseFormat::Vtt,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The file name the client gave (for people; never a path here).
    pub filename: String,
    /// The upload's file name in the uploads folder (the job id, and an extension from a
    /// fixed list of media extensions for the format probe).
    pub stored_as: String,
    pub sha256: String,
    pub size: u64,
    /// `model` as sent.
    pub model: String,
    /// The profile it names (`None`: `[asr]`'s own).
    #[serde(default)]
    pub profile: Option<String>,
    pub task: Task,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub temperature: Option<f32>,
    pub response_format: ResponseFormat,
    /// `timestamp_granularities[]`: `word`, `segment`.
    #[serde(default)]
    pub granularities: Vec<String>,
    /// The S3 object a `{"url": …}` job was fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Request {
    /// The request `fields` make, for `profile` (`model` resolved) and `task`; the file is
    /// added with [`Request::with_file`].
    pub fn new(fields: &Fields, profile: Option<String>, task: Task) -> Request {
        Request {
            filename: String::new(),
            stored_as: String::new(),
            sha256: String::new(),
            size: 0,
            model: fields.model.clone(),
            profile,
            task: if fields.translate {
                Task::Translate
            } else {
                task
            },
            language: fields.language.clone(),
            prompt: fields.prompt.clone(),
            temperature: fields.temperature,
            response_format: fields.response_format,
            granularities: fields.granularities.clone(),
            url: None,
        }
    }

    pub fn with_file(mut self, file: &super::receive::ReceivedFile) -> Request {
        self.filename.clone_from(&file.filename);
        self.stored_as.clone_from(&file.stored_as);
        self.sha256.clone_from(&file.sha256);
        self.size = file.size;
        self
    }

    pub fn with_url(mut self, url: &str) -> Request {
        self.url = Some(url.to_string());
        self
    }

    /// Whether `other` asks for the same thing: the same content (or S3 object) with the
    /// same options. The file's name may differ (clients name a retried part anew).
    pub fn same_as(&self, other: &Request) -> bool {
        let content = match (&self.url, &other.url) {
            (None, None) => self.sha256 == other.sha256 && self.size == other.size,
            (a, b) => a == b,
        };
        content
            && self.model == other.model
            && self.profile == other.profile
            && self.task == other.task
            && self.language == other.language
            && self.prompt == other.prompt
            && self.temperature == other.temperature
            && self.response_format == other.response_format
            && self.granularities == other.granularities
    }

    pub fn parse(json: &str) -> Result<Request, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Changes the profile's options as the request asks.
    pub fn apply(&self, opts: &mut DecodeOptions) {
        opts.translate = self.task == Task::Translate;
        if let Some(l) = &self.language {
            opts.language.clone_from(l);
            opts.languages.clear();
            opts.language_per_segment = false;
        }
        if let Some(p) = &self.prompt {
            opts.prompt = Some(p.clone());
        }
        if let Some(t) = self.temperature {
            opts.temperature = t;
        }
    }

    /// Whether the reply lists segments (OpenAI's default) and words.
    pub fn wants(&self, granularity: &str) -> bool {
        match granularity {
            "segment" => {
                self.granularities.is_empty() || self.granularities.iter().any(|g| g == "segment")
            }
            g => self.granularities.iter().any(|x| x == g),
        }
    }
}

/// The form fields of an upload, checked; `model` is resolved by the caller.
pub struct Fields {
    pub model: String,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub temperature: Option<f32>,
    pub response_format: ResponseFormat,
    pub granularities: Vec<String>,
    /// whisper.cpp's server takes `translate=true` instead of a route.
    pub translate: bool,
    /// Where the job's end is POSTed (signed, through the outbox).
    pub callback_url: Option<String>,
}

impl Fields {
    pub fn check(
        fields: &HashMap<String, String>,
        granularities: Vec<String>,
    ) -> Result<Fields, ApiError> {
        let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        if get("stream").is_some_and(|v| v == "true") {
            return Err(ApiError::invalid(
                "stream",
                "streamed responses are not offered: the reply comes whole, or follow the job's progress at /v1/jobs/{id}/events",
            ));
        }
        let response_format = match get("response_format") {
            None => ResponseFormat::Json,
            Some(f) => ResponseFormat::parse(f).ok_or_else(|| {
                ApiError::invalid(
                    "response_format",
                    format!(
                        "response_format {f:?} is not one of json, text, srt, verbose_json, vtt"
                    ),
                )
            })?,
        };
        let language = match get("language") {
            None => None,
            Some(l) => {
                let l = l.to_ascii_lowercase();
                if let Some(why) = crate::config::language_problem(&l) {
                    return Err(ApiError::invalid("language", why));
                }
                Some(l)
            }
        };
        let temperature = match get("temperature") {
            None => None,
            Some(t) => match t.parse::<f32>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Some(v),
                _ => {
                    return Err(ApiError::invalid(
                        "temperature",
                        format!("temperature {t:?} is not a number from 0 to 1"),
                    ))
                }
            },
        };
        for g in &granularities {
            if g != "word" && g != "segment" {
                return Err(ApiError::invalid(
                    "timestamp_granularities[]",
                    format!("timestamp_granularities[] {g:?} is not word or segment"),
                ));
            }
        }
        if !granularities.is_empty() && response_format != ResponseFormat::VerboseJson {
            return Err(ApiError::invalid(
                "timestamp_granularities[]",
                "timestamp_granularities[] needs response_format verbose_json",
            ));
        }
        let callback_url = match get("callback_url") {
            None => None,
            Some(url) => {
                if let Some(why) = crate::config::webhook_url_problem(url) {
                    return Err(ApiError::invalid(
                        "callback_url",
                        format!("callback_url: {why}"),
                    ));
                }
                Some(url.to_string())
            }
        };
        Ok(Fields {
            callback_url,
            model: get("model").unwrap_or_default().to_string(),
            language,
            prompt: fields
                .get("prompt")
                .filter(|p| !p.trim().is_empty())
                .cloned(),
            temperature,
            response_format,
            granularities,
            translate: get("translate").is_some_and(|v| v == "true" || v == "1"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fields_are_checked_with_the_field_named() {
        let ok = Fields::check(
            &fields(&[
                ("model", "whisper-1"),
                ("response_format", "verbose_json"),
                ("language", "EN"),
            ]),
            vec!["word".into()],
        )
        .unwrap();
        assert_eq!(ok.response_format, ResponseFormat::VerboseJson);
        assert_eq!(ok.language.as_deref(), Some("en"));
        for (pairs, granularities, param) in [
            (vec![("response_format", "xml")], vec![], "response_format"),
            (vec![("language", "klingon")], vec![], "language"),
            (vec![("temperature", "7")], vec![], "temperature"),
            (
                vec![],
                vec!["word".to_string()],
                "timestamp_granularities[]",
            ),
            (
                vec![("response_format", "verbose_json")],
                vec!["char".to_string()],
                "timestamp_granularities[]",
            ),
            (vec![("stream", "true")], vec![], "stream"),
            (
                vec![("callback_url", "http://10.0.0.9/hook")],
                vec![],
                "callback_url",
            ),
        ] {
            let e = Fields::check(&fields(&pairs), granularities).err().unwrap();
            assert_eq!(e.param, Some(param), "{pairs:?}");
        }
    }

    #[test]
    fn a_request_changes_only_what_it_names() {
        let mut opts = DecodeOptions {
            translate: true,
            prompt: Some("Glossary".into()),
            ..DecodeOptions::default()
        };
        let r = Request {
            filename: "a.wav".into(),
            stored_as: "x.wav".into(),
            sha256: String::new(),
            size: 1,
            model: "whisper-1".into(),
            profile: None,
            task: Task::Transcribe,
            language: Some("de".into()),
            prompt: None,
            temperature: None,
            response_format: ResponseFormat::Json,
            granularities: vec![],
            url: None,
        };
        r.apply(&mut opts);
        assert!(!opts.translate);
        assert_eq!(opts.language, "de");
        assert_eq!(opts.prompt.as_deref(), Some("Glossary"));
        assert!(r.wants("segment") && !r.wants("word"));
        let back = Request::parse(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_retry_is_the_same_request_only_with_the_same_content_and_options() {
        let asked = |pairs: &[(&str, &str)], sha256: &str, url: Option<&str>| {
            let mut r = Request::new(
                &Fields::check(&fields(pairs), vec![]).unwrap(),
                None,
                Task::Transcribe,
            );
            r.sha256 = sha256.into();
            r.size = 10;
            r.url = url.map(Into::into);
            r
        };
        let first = asked(&[("language", "en")], "aa", None);
        let mut renamed = asked(&[("language", "en")], "aa", None);
        renamed.filename = "file".into();
        assert!(first.same_as(&renamed));
        assert!(!first.same_as(&asked(&[("language", "en")], "bb", None)));
        assert!(!first.same_as(&asked(&[("language", "de")], "aa", None)));
        assert!(!first.same_as(&asked(
            &[("language", "en"), ("translate", "true")],
            "aa",
            None
        )));
        let object = asked(&[], "aa", Some("s3://b/k.wav"));
        assert!(object.same_as(&asked(&[], "", Some("s3://b/k.wav"))));
        assert!(!object.same_as(&asked(&[], "aa", Some("s3://b/other.wav"))));
        assert!(!object.same_as(&asked(&[], "aa", None)));
    }
}
