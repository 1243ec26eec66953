use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, Resolved};

pub fn run(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            let Ok(asr) = c.resolve_profile(None, None) else {
                // `load` resolved every profile already; this cannot fail after it.
                return ExitCode::FAILURE;
            };
            println!(
                "{}: ok ({} watched folder{}, journal {}, model {}, {})",
                path.display(),
                c.watch.len(),
                if c.watch.len() == 1 { "" } else { "s" },
                c.journal.path.display(),
                c.asr.model.display(),
                vad(&asr)
            );
            let sources = c
                .watch
                .iter()
                .map(|w| {
                    let name = w.path.get_ref().display().to_string();
                    let formats = w.formats.get_ref().clone();
                    (name, w.resolved(&c), formats, layout(w))
                })
                .chain(c.s3.iter().map(|q| {
                    let name = q.queue_url.get_ref().clone();
                    let formats = q.formats.get_ref().clone();
                    (name, q.resolved(&c), formats, String::new())
                }));
            let mut warned = Vec::new();
            for (source, resolved, formats, layout) in sources {
                let Ok(mut r) = resolved else { continue };
                r.formats.get_or_insert(formats);
                println!("  {source}: {}{layout}", summary(&r, &c));
                if let Some(w) = r.vad_missing.filter(|w| !warned.contains(w)) {
                    eprintln!("{}: warning: {source}: {w} (vad = false)", path.display());
                    warned.push(w);
                }
            }
            if let Some(w) = asr.vad_missing.filter(|w| !warned.contains(w)) {
                eprintln!("{}: warning: {w} (asr.vad = false)", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} problem{}",
                path.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

fn vad(r: &Resolved) -> String {
    match (&r.opts.vad_model, &r.vad_missing) {
        (Some(p), _) => format!("VAD model {}", p.display()),
        (None, Some(_)) => "no VAD model found".into(),
        (None, None) => "VAD off".into(),
    }
}

/// Where a folder's outputs go and which of its files are inputs.
fn layout(w: &crate::config::WatchConfig) -> String {
    let inputs = w
        .extensions()
        .map_or_else(String::new, |e| format!(", inputs .{}", e.join(" .")));
    match w.beside() {
        true => {
            format!(", subtitles beside the media (NAME.LANGUAGE.srt), media left in place{inputs}")
        }
        false => inputs,
    }
}

/// One line per source: what its inputs are decoded with.
fn summary(r: &Resolved, c: &Config) -> String {
    let o = &r.opts;
    let language = if o.languages.is_empty() {
        o.language.clone()
    } else {
        format!("auto among {}", o.languages.join(", "))
    };
    let formats = r.formats.as_ref().map_or_else(String::new, |f| {
        let names: Vec<&str> = f.iter().map(|f| f.extension()).collect();
        format!(", formats {}", names.join(" "))
    });
    let channels = match o.channels {
        crate::pipeline::channels::Channels::Mix => String::new(),
        crate::pipeline::channels::Channels::Split => format!(
            ", channels split ({}, {})",
            crate::pipeline::channels::speaker(0, &o.channel_names),
            crate::pipeline::channels::speaker(1, &o.channel_names)
        ),
    };
    format!(
        "model {}, language {language}{}{}, beam {}, best_of {}, {}{channels}{formats}",
        r.model.as_deref().unwrap_or(&c.asr.model).display(),
        if o.language_per_segment {
            " per segment"
        } else {
            ""
        },
        if o.translate { " → en" } else { "" },
        o.beam_size,
        o.best_of,
        vad(r)
    )
}
