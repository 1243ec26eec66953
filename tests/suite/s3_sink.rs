//! The S3 output writer against the emulator: large outputs go up as multipart uploads
//! whose completion carries the same `If-None-Match: *` condition as a single PUT, so a
//! second writer of the same result finds it there, and no parts are left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::moto::world;
use hotfolderd::pipeline::render::Format;
use hotfolderd::sinks::s3::{put_once, OutputObject, Put, INPUT_SHA_META};

fn target<'a>(key: &'a str, sha: &'a str, threshold: u64) -> OutputObject<'a> {
    OutputObject {
        bucket: "results",
        key,
        format: Format::Json,
        input_sha256: sha,
        multipart_threshold: threshold,
        sequencer: None,
    }
}

/// An older upload's job never replaces the outputs of a newer upload of the same key: the
/// S3 event sequencer each output records decides.
#[test]
fn an_older_uploads_output_never_replaces_a_newer_ones() {
    let w = world(&[]);
    let put = |sha: &str, seq: &str, body: &str| {
        let o = OutputObject {
            sequencer: Some(seq),
            ..target("a.txt", sha, 16 << 20)
        };
        w.rt.block_on(put_once(&w.s3, &o, body.as_bytes().to_vec()))
            .unwrap()
    };
    assert_eq!(put("bbbb", "00B", "newer"), Put::Written);
    assert_eq!(put("aaaa", "00A0", "older"), Put::Newer);
    assert_eq!(w.output("a.txt").unwrap(), b"newer");
    assert_eq!(put("cccc", "00C", "newest"), Put::Written);
    assert_eq!(w.output("a.txt").unwrap(), b"newest");
}

#[test]
fn large_outputs_are_written_in_parts_exactly_once() {
    let w = world(&[]);
    // 20 MiB: three parts of at most 8 MiB.
    let body: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let first = target("big.json", "aaaa", 16 << 20);
    let put =
        w.rt.block_on(put_once(&w.s3, &first, body.clone()))
            .unwrap();
    assert_eq!(put, Put::Written);

    let head =
        w.rt.block_on(w.s3.head_object().bucket("results").key("big.json").send())
            .unwrap();
    assert!(
        head.e_tag().unwrap().trim_matches('"').ends_with("-3"),
        "not a three-part upload: etag {:?}",
        head.e_tag()
    );
    assert_eq!(
        head.metadata()
            .unwrap()
            .get(INPUT_SHA_META)
            .map(String::as_str),
        Some("aaaa")
    );
    assert_eq!(head.content_type(), Some("application/json"));
    assert_eq!(w.output("big.json").unwrap(), body);

    // The same result again: the conditional completion fails, the upload is aborted and
    // the object already there counts as success.
    let again =
        w.rt.block_on(put_once(&w.s3, &first, body.clone()))
            .unwrap();
    assert_eq!(again, Put::AlreadyThere);

    // A result from a newer input replaces it.
    let newer: Vec<u8> = body.iter().map(|b| b.wrapping_add(1)).collect();
    let second = target("big.json", "bbbb", 16 << 20);
    let put =
        w.rt.block_on(put_once(&w.s3, &second, newer.clone()))
            .unwrap();
    assert_eq!(put, Put::Written);
    assert_eq!(w.output("big.json").unwrap(), newer);

    let open =
        w.rt.block_on(w.s3.list_multipart_uploads().bucket("results").send())
            .unwrap();
    assert!(
        open.uploads().is_empty(),
        "multipart uploads left open: {:?}",
        open.uploads()
    );
}

#[test]
fn small_outputs_below_the_threshold_are_single_puts() {
    let w = world(&[]);
    let small = b"{\"text\":\"hello\"}".to_vec();
    let t = target("small.json", "cccc", 16 << 20);
    assert_eq!(
        w.rt.block_on(put_once(&w.s3, &t, small.clone())).unwrap(),
        Put::Written
    );
    let head =
        w.rt.block_on(
            w.s3.head_object()
                .bucket("results")
                .key("small.json")
                .send(),
        )
        .unwrap();
    assert!(!head.e_tag().unwrap().contains('-'));
    // One byte of threshold: even a tiny output goes up as a single-part upload.
    let t = target("tiny.json", "cccc", 1);
    assert_eq!(
        w.rt.block_on(put_once(&w.s3, &t, small.clone())).unwrap(),
        Put::Written
    );
    let head =
        w.rt.block_on(w.s3.head_object().bucket("results").key("tiny.json").send())
            .unwrap();
    assert!(head.e_tag().unwrap().trim_matches('"').ends_with("-1"));
    assert_eq!(w.output("tiny.json").unwrap(), small);
}
