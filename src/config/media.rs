//! `output = "beside"`: a watched media library. Subtitles go next to each file under the
//! names Jellyfin, Plex and Bazarr read (`movie.en.srt`), only media extensions are inputs,
//! and the media is never moved or deleted.

use std::ops::Range;

use super::{After, WatchConfig};
use crate::pipeline::render::Format;

/// The `output` value that selects the media layout (a folder named so is `"./beside"`).
pub const BESIDE: &str = "beside";

/// What a media library gets unless the folder or its profile says otherwise: players read
/// srt; a json or txt beside every film would only clutter the library.
pub const DEFAULT_FORMATS: [Format; 1] = [Format::Srt];

/// `".MKV"` → `"mkv"`.
pub fn normal_extension(e: &str) -> String {
    e.trim().trim_start_matches('.').to_ascii_lowercase()
}

/// What is wrong with `[[watch]]` number `i`'s `extensions`, `after` and `keep_*` under
/// the layout it has.
pub fn problems(i: usize, w: &WatchConfig) -> Vec<(Range<usize>, String)> {
    let mut found = Vec::new();
    if let Some(e) = &w.extensions {
        if e.get_ref().is_empty() {
            found.push((
                e.span(),
                format!("watch[{i}].extensions is empty: no file would be an input (leave it out to take every file)"),
            ));
        }
        for x in e.get_ref() {
            let n = normal_extension(x);
            if n.is_empty() || n.contains(['/', '.']) {
                found.push((
                    e.span(),
                    format!("watch[{i}].extensions: {x:?} is not an extension like \"mkv\""),
                ));
            } else if w.beside() && Format::ALL.iter().any(|f| f.extension() == n) {
                found.push((
                    e.span(),
                    format!("watch[{i}].extensions has {x:?}, an extension its own outputs have: with output = \"beside\" they lie in the watched folder and would be taken as inputs"),
                ));
            }
        }
    }
    if !w.beside() {
        return found;
    }
    if let Some(a) = w.after.as_ref().filter(|a| *a.get_ref() != After::Keep) {
        found.push((
            a.span(),
            format!("watch[{i}].after: output = \"beside\" subtitles a media library, whose files must stay where they are; use after = \"keep\" (the default there)"),
        ));
    }
    let keeps = [
        ("keep_done", w.keep_done.is_some()),
        ("keep_failed", w.keep_failed.is_some()),
        ("keep_outputs", w.keep_outputs.is_some()),
    ];
    for (key, _) in keeps.iter().filter(|(_, set)| *set) {
        found.push((
            w.output.span(),
            format!("watch[{i}].{key}: with output = \"beside\" nothing is moved to done/ or failed/, and retention never deletes files from a media library; remove {key}"),
        ));
    }
    found
}
