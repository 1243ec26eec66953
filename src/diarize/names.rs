//! Naming a file's speakers: a speaker whose voice matches a known one (an enrolled person,
//! or with `speakers_from = "folder"` a speaker heard in an earlier input of the same
//! source) above the match threshold takes its name; the others are numbered `S1`, `S2`, …
//! with numbers no known voice uses.

use super::cluster::cosine;

/// A voice with a name, to match a file's speakers against.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub name: String,
    /// Unit length.
    pub print: Vec<f32>,
}

/// The name of each of a file's `voices` (their prints, by speaker number). Each known voice
/// names at most one speaker: the most similar pairs are taken first.
pub fn names(voices: &[Vec<f32>], known: &[Known], threshold: f32) -> Vec<String> {
    let mut pairs: Vec<(usize, usize, f32)> = Vec::new();
    for (i, v) in voices.iter().enumerate() {
        for (k, kv) in known.iter().enumerate() {
            let s = cosine(v, &kv.print);
            if s >= threshold {
                pairs.push((i, k, s));
            }
        }
    }
    pairs.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut named: Vec<Option<String>> = vec![None; voices.len()];
    let mut used = vec![false; known.len()];
    for (i, k, _) in pairs {
        if named[i].is_none() && !used[k] {
            named[i] = Some(known[k].name.clone());
            used[k] = true;
        }
    }
    let mut next = 1usize;
    named
        .into_iter()
        .map(|n| {
            n.unwrap_or_else(|| loop {
                let candidate = format!("S{next}");
                next += 1;
                if !known.iter().any(|k| k.name == candidate) {
                    break candidate;
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: f32, y: f32) -> Vec<f32> {
        let n = (x * x + y * y).sqrt();
        vec![x / n, y / n]
    }

    #[test]
    fn matches_take_known_names_once_and_strangers_get_free_numbers() {
        let known = vec![
            Known {
                name: "ada".into(),
                print: v(1.0, 0.0),
            },
            Known {
                name: "S1".into(),
                print: v(0.0, 1.0),
            },
        ];
        // Two speakers near ada: the nearer one is ada, the other a stranger; a third
        // matches the folder's S1; a fourth is far from both.
        let voices = vec![v(1.0, 0.3), v(1.0, 0.05), v(0.1, 1.0), v(-1.0, -1.0)];
        assert_eq!(names(&voices, &known, 0.8), ["S2", "ada", "S1", "S3"]);
        assert_eq!(names(&voices, &[], 0.8), ["S1", "S2", "S3", "S4"]);
    }
}
