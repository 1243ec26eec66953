//! Output names, decided from the journal so that two inputs never share one and an input
//! keeps its name across restarts and reloads. An input's outputs are named after its key
//! less the extension (`movie.mkv` → `movie.srt`, where media players look), unless an input
//! journaled earlier in the same source already has that name: then after the whole key
//! (`a.mp3` → `a.mp3.json` beside `a.wav`'s `a.json`), and if that is taken too, the whole
//! key and the journal id it was first seen under (`a.mp3.17.json`). Names are handed out
//! in the order keys were first journaled, so a later arrival never renames an earlier one.

use std::collections::HashSet;

/// `key` less its extension: the part of the last path segment after its last `.`, unless
/// that `.` starts the segment (`.hidden` has none).
pub fn stem_of(key: &str) -> &str {
    let segment = key.rfind('/').map_or(0, |i| i + 1);
    match key[segment..].rfind('.') {
        Some(dot) if dot > 0 => &key[..segment + dot],
        _ => key,
    }
}

/// Every key that could compete with `key` for a name starts with this prefix, given the
/// keys `known` to start with `prefix` so far; `None` when `prefix` already covers them.
pub fn wider_prefix<'a>(prefix: &str, known: &'a [(String, i64)]) -> Option<&'a str> {
    known
        .iter()
        .map(|(k, _)| stem_of(k))
        .filter(|s| s.len() < prefix.len())
        .min_by_key(|s| s.len())
}

/// The output name (path or key without extension) of `key`, among `family`: every key of
/// its source that starts with the prefix `wider_prefix` settled on, with the id each was
/// first journaled under.
pub fn output_name(key: &str, family: &[(String, i64)]) -> String {
    let mut members: Vec<&(String, i64)> = family.iter().collect();
    members.sort_by_key(|(_, id)| *id);
    let mut taken: HashSet<String> = HashSet::new();
    for (k, id) in members {
        let candidates = [stem_of(k).to_string(), k.clone(), format!("{k}.{id}")];
        let name = candidates
            .into_iter()
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| format!("{k}.{id}"));
        if k == key {
            return name;
        }
        taken.insert(name);
    }
    stem_of(key).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(keys: &[(&str, i64)]) -> Vec<(String, i64)> {
        keys.iter().map(|(k, id)| (k.to_string(), *id)).collect()
    }

    #[test]
    fn stems_drop_only_the_last_segments_extension() {
        assert_eq!(stem_of("dir/a.b.wav"), "dir/a.b");
        assert_eq!(stem_of("dir.x/file"), "dir.x/file");
        assert_eq!(stem_of("dir/.hidden"), "dir/.hidden");
        assert_eq!(stem_of("movie.mkv"), "movie");
    }

    #[test]
    fn a_unique_stem_keeps_the_plain_name() {
        let f = family(&[("movie.mkv", 3), ("movies.wav", 1)]);
        assert_eq!(output_name("movie.mkv", &f), "movie");
    }

    #[test]
    fn the_first_journaled_keeps_the_stem_and_later_ones_use_the_whole_key() {
        let f = family(&[("a.wav", 1), ("a.mp3", 2), ("a.ogg", 5)]);
        assert_eq!(output_name("a.wav", &f), "a");
        assert_eq!(output_name("a.mp3", &f), "a.mp3");
        assert_eq!(output_name("a.ogg", &f), "a.ogg");
        // Whatever order the family is listed in.
        let mut shuffled = f.clone();
        shuffled.reverse();
        assert_eq!(output_name("a.mp3", &shuffled), "a.mp3");
    }

    #[test]
    fn a_whole_key_already_used_as_a_stem_gets_the_id() {
        // `a.mp3.wav` came first and is named `a.mp3`; `a.mp3` cannot be `a` (a.wav's) or
        // `a.mp3` (a.mp3.wav's).
        let f = family(&[("a.mp3.wav", 1), ("a.wav", 2), ("a.mp3", 7)]);
        assert_eq!(output_name("a.mp3.wav", &f), "a.mp3");
        assert_eq!(output_name("a.wav", &f), "a");
        assert_eq!(output_name("a.mp3", &f), "a.mp3.7");
    }

    #[test]
    fn the_prefix_widens_to_the_shortest_stem_among_the_keys_found() {
        let found = family(&[("a.mp3", 2), ("a.mp3.wav", 1)]);
        assert_eq!(wider_prefix("a.mp3", &found), Some("a"));
        assert_eq!(wider_prefix("a", &family(&[("a.wav", 1)])), None);
    }
}
