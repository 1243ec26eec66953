//! Which audio track of a file with several (a film with a dubbed track, a recording with a
//! commentary) is transcribed: the container's default (its first audio track), the n-th
//! audio track, or the one tagged with a language (`"eng"`, `"en"`, `"deu"`…: ISO 639-1,
//! 639-2/B and 639-2/T codes of one language all match each other).

use std::fmt;

/// `audio_track` / `--audio-track`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioTrack {
    #[default]
    Default,
    /// Counting audio tracks only, from 0.
    Index(usize),
    Language(String),
}

impl AudioTrack {
    pub fn is_default(&self) -> bool {
        *self == AudioTrack::Default
    }
}

impl std::str::FromStr for AudioTrack {
    type Err = String;

    fn from_str(s: &str) -> Result<AudioTrack, String> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("default") {
            return Ok(AudioTrack::Default);
        }
        if let Ok(n) = s.parse::<usize>() {
            return Ok(AudioTrack::Index(n));
        }
        let ok =
            (2..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "{s:?} is not an audio track: give \"default\", an index (0 is the first audio track) or a language tag such as \"eng\""
            ));
        }
        Ok(AudioTrack::Language(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for AudioTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioTrack::Default => f.write_str("default"),
            AudioTrack::Index(n) => write!(f, "{n}"),
            AudioTrack::Language(l) => f.write_str(l),
        }
    }
}

impl serde::Serialize for AudioTrack {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AudioTrack {
    /// `audio_track = 1` or `audio_track = "eng"`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AudioTrack, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Index(usize),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Index(n) => Ok(AudioTrack::Index(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// ISO 639-1 codes and their 639-2 (bibliographic and terminology) forms, for the languages
/// films and recordings are most often tagged with.
const CODES: &[(&str, &[&str])] = &[
    ("ar", &["ara"]),
    ("cs", &["cze", "ces"]),
    ("da", &["dan"]),
    ("de", &["ger", "deu"]),
    ("el", &["gre", "ell"]),
    ("en", &["eng"]),
    ("es", &["spa"]),
    ("fa", &["per", "fas"]),
    ("fi", &["fin"]),
    ("fr", &["fre", "fra"]),
    ("he", &["heb"]),
    ("hi", &["hin"]),
    ("hu", &["hun"]),
    ("id", &["ind"]),
    ("it", &["ita"]),
    ("ja", &["jpn"]),
    ("ko", &["kor"]),
    ("nl", &["dut", "nld"]),
    ("no", &["nor"]),
    ("pl", &["pol"]),
    ("pt", &["por"]),
    ("ro", &["rum", "ron"]),
    ("ru", &["rus"]),
    ("sv", &["swe"]),
    ("th", &["tha"]),
    ("tr", &["tur"]),
    ("uk", &["ukr"]),
    ("vi", &["vie"]),
    ("zh", &["chi", "zho"]),
];

/// A language tag reduced to one form: its primary subtag, as ISO 639-1 where known.
fn canonical(tag: &str) -> String {
    let primary = tag
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    CODES
        .iter()
        .find(|(one, three)| *one == primary || three.contains(&primary.as_str()))
        .map_or(primary, |(one, _)| one.to_string())
}

/// Whether two language tags name the same language (`eng` and `en-US` do).
pub fn same_language(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

/// An audio track as a file offers it.
#[derive(Debug, Clone)]
pub struct Offered {
    pub id: u32,
    pub language: Option<String>,
    pub codec: String,
}

/// The track `choice` picks among `audio` (the file's audio tracks, in order); `default` is
/// the container's own choice.
pub fn pick(choice: &AudioTrack, audio: &[Offered], default: u32) -> Result<u32, String> {
    let list = || {
        audio
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "{i} {} ({})",
                    t.language.as_deref().unwrap_or("untagged"),
                    t.codec
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match choice {
        AudioTrack::Default => Ok(default),
        AudioTrack::Index(n) => audio.get(*n).map(|t| t.id).ok_or_else(|| {
            format!(
                "has no audio track {n} (audio_track): its audio tracks are {}",
                list()
            )
        }),
        AudioTrack::Language(l) => audio
            .iter()
            .find(|t| t.language.as_deref().is_some_and(|t| same_language(t, l)))
            .map(|t| t.id)
            .ok_or_else(|| match audio.iter().any(|t| t.language.is_some()) {
                true => format!(
                    "has no audio track in language {l:?} (audio_track): its audio tracks are {}",
                    list()
                ),
                // mp4 and mov: symphonia does not pass their track languages on.
                false => format!(
                    "does not say which language its audio tracks are in, so audio_track {l:?} cannot be found: choose by index instead (its audio tracks are {})",
                    list()
                ),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(id: u32, lang: Option<&str>) -> Offered {
        Offered {
            id,
            language: lang.map(str::to_string),
            codec: "aac".into(),
        }
    }

    #[test]
    fn a_track_is_picked_by_index_or_by_any_form_of_its_language() {
        let tracks = [
            offered(1, Some("eng")),
            offered(2, Some("ger")),
            offered(5, None),
        ];
        assert_eq!(pick(&AudioTrack::Default, &tracks, 1), Ok(1));
        assert_eq!(pick(&"1".parse().unwrap(), &tracks, 1), Ok(2));
        for tag in ["de", "deu", "ger", "de-AT", "DEU"] {
            assert_eq!(pick(&tag.parse().unwrap(), &tracks, 1), Ok(2), "{tag}");
        }
        assert_eq!(pick(&"en".parse().unwrap(), &tracks, 1), Ok(1));
        let missing = pick(&"fra".parse().unwrap(), &tracks, 1).unwrap_err();
        assert!(
            missing.contains("0 eng (aac), 1 ger (aac), 2 untagged (aac)"),
            "{missing}"
        );
        assert!(pick(&AudioTrack::Index(3), &tracks, 1).is_err());
        assert!("english track".parse::<AudioTrack>().is_err());
        let untagged = [offered(1, None), offered(2, None)];
        let why = pick(&"eng".parse().unwrap(), &untagged, 1).unwrap_err();
        assert!(why.contains("choose by index"), "{why}");
        assert_eq!("".parse::<AudioTrack>(), Ok(AudioTrack::Default));
    }
}
