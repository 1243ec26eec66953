//! Output names, decided from the journal so that two inputs never share one and an input
//! keeps its name across restarts and reloads. An input's outputs are named after its key
//! less the extension (`movie.mkv` → `movie.srt`, where media players look), unless an input
//! journaled earlier in the same source already has that name: then after the whole key
//! (`a.mp3` → `a.mp3.json` beside `a.wav`'s `a.json`), and if that is taken too, the whole
//! key and the journal id it was first seen under (`a.mp3.17.json`, then `a.mp3.17.2.json`…).
//! Names are handed out in the order keys were first journaled, so a later arrival never
//! renames an earlier one.
//!
//! Every name a key can get is its root (the last segment up to its first `.`) followed by
//! nothing or by `.…`, so only keys with the same root can compete for a name: that family
//! is what the journal is asked for, and every member sees the same family.

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

/// `key` up to the first `.` of its last segment (one that starts the segment does not
/// count): `dir/a.mp3.wav` → `dir/a`.
pub fn root_of(key: &str) -> &str {
    let segment = key.rfind('/').map_or(0, |i| i + 1);
    match key[segment..]
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '.')
    {
        Some((dot, _)) => &key[..segment + dot],
        None => key,
    }
}

/// The output name (path or key without extension) of `key` among `family`: the keys of its
/// source that start with its root, with the id each was first journaled under (others
/// with another root are ignored).
pub fn output_name(key: &str, family: &[(String, i64)]) -> String {
    let root = root_of(key);
    let mut members: Vec<&(String, i64)> =
        family.iter().filter(|(k, _)| root_of(k) == root).collect();
    members.sort_by_key(|(_, id)| *id);
    let mut taken: HashSet<String> = HashSet::new();
    for (k, id) in members {
        // `x` and `x.full` clash too: `x`'s json-full is `x.full`'s json.
        let free = |n: &String| {
            !taken
                .iter()
                .any(|t| crate::pipeline::render::stems_clash(t, n))
        };
        let mut name = [stem_of(k).to_string(), k.clone(), format!("{k}.{id}")]
            .into_iter()
            .find(|n| free(n))
            .unwrap_or_else(|| format!("{k}.{id}"));
        let mut n = 2;
        while !free(&name) {
            name = format!("{k}.{id}.{n}");
            n += 1;
        }
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
    fn a_json_full_output_never_shares_a_file_with_another_inputs_json() {
        let f = family(&[("x.wav", 1), ("x.full.wav", 2)]);
        assert_eq!(output_name("x.wav", &f), "x");
        assert_eq!(output_name("x.full.wav", &f), "x.full.wav");
        let f = family(&[("x.full.wav", 1), ("x.wav", 2)]);
        assert_eq!(output_name("x.full.wav", &f), "x.full");
        assert_eq!(output_name("x.wav", &f), "x.wav");
    }

    #[test]
    fn stems_drop_only_the_last_segments_extension() {
        assert_eq!(stem_of("dir/a.b.wav"), "dir/a.b");
        assert_eq!(stem_of("dir.x/file"), "dir.x/file");
        assert_eq!(stem_of("dir/.hidden"), "dir/.hidden");
        assert_eq!(stem_of("movie.mkv"), "movie");
    }

    #[test]
    fn roots_end_at_the_first_dot_of_the_last_segment() {
        assert_eq!(root_of("dir.x/a.mp3.wav"), "dir.x/a");
        assert_eq!(root_of("dir/.hidden.wav"), "dir/.hidden");
        assert_eq!(root_of("plain"), "plain");
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

    /// Every key of a family gets a name of its own, whichever member asks, and a later
    /// arrival changes no earlier name (found by review: `a.mp3.7.wav` and `a.mp3` both
    /// got `a.mp3.7`; `x.wav.9.mp3` could take `x.wav`'s `x.wav.9`).
    #[test]
    fn names_are_unique_and_stable_as_keys_arrive() {
        let arrivals = [
            ("a.wav", 1),
            ("a.mp3.wav", 2),
            ("a.mp3.7.wav", 3),
            ("a.mp3", 7),
            ("x.mp3", 8),
            ("x.wav.mp3", 9),
            ("x.wav", 10),
            ("x.wav.10.mp3", 11),
            ("x.wav.10", 12),
        ];
        let mut before: std::collections::HashMap<&str, String> = Default::default();
        for n in 1..=arrivals.len() {
            let f = family(&arrivals[..n]);
            let names: Vec<String> = arrivals[..n]
                .iter()
                .map(|(k, _)| output_name(k, &f))
                .collect();
            let unique: HashSet<&String> = names.iter().collect();
            assert_eq!(unique.len(), n, "{names:?}");
            for ((k, _), name) in arrivals[..n].iter().zip(&names) {
                let was = before.entry(k).or_insert_with(|| name.clone());
                assert_eq!(was, name, "{k} was renamed");
            }
        }
    }
}
