//! `[[notify]]` webhooks: a receiver started by the test gets one signed notification per
//! finished file, even when it was down while the files finished and the daemon was killed
//! (`kill -9`) and restarted meanwhile; a 410 is not retried and the notification waits,
//! undeliverable, until `hotfolderd notify resend`; S3 results carry presigned links that
//! download the outputs from the emulator, and SQS and SNS targets get the same document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::common::hook::{Hook, Request};
use crate::common::*;
use hmac::{KeyInit, Mac};

const SECRET: &str = "a-long-random-webhook-secret";

fn with_notify(config: &Path, d: &Path, hook: &Hook, extra: &str) {
    std::fs::write(d.join("webhook.secret"), format!("{SECRET}\n")).unwrap();
    let mut text = std::fs::read_to_string(config).unwrap();
    text += &format!(
        "[[notify]]\nkind = \"webhook\"\nurl = {:?}\nsecret_file = {:?}\n\
         events = [\"done\", \"failed\", \"quarantined\"]\nmax_backoff = \"2s\"\ntimeout = \"5s\"\n{extra}\n",
        hook.url(),
        d.join("webhook.secret"),
    );
    std::fs::write(config, text).unwrap();
}

/// The receiver's check: the signature header is the HMAC of the raw body.
fn assert_signed(r: &Request) {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        r.headers.get("x-hotfolderd-signature"),
        Some(&expected),
        "{r:?}"
    );
    assert_eq!(
        r.headers.get("x-hotfolderd-delivery").map(String::as_str),
        r.json()["delivery"].as_str()
    );
}

#[test]
fn every_notification_arrives_once_through_an_outage_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut hook = Hook::down();
    let config = write_daemon_config(d, "300ms");
    // Attempts enough that none gives up while the others are still transcribing on a
    // loaded machine (with 15, 2 s apart, the first gave up before the last file was done).
    with_notify(&config, d, &hook, "max_attempts = 1000");
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();

    // The receiver is down while three files finish (two good, one not audio).
    let mut daemon = start_daemon(&config);
    for (name, text) in [
        ("one", "The first notification."),
        ("two", "The second one."),
    ] {
        std::fs::copy(
            speak(d, name, text, "en-us"),
            inbox.join(format!("{name}.wav")),
        )
        .unwrap();
    }
    std::fs::write(inbox.join("bad.wav"), b"this is not audio at all").unwrap();
    wait_until(
        "three inputs finished and their notifications tried",
        || {
            let s = status(&config);
            s.contains("done         2")
                && s.contains("quarantined  1")
                && s.contains("0 sent, 3 pending")
        },
    );
    // Killed with notifications pending: they are in the journal, not in memory.
    assert!(!signal_daemon(&mut daemon, "KILL").success());
    let daemon = start_daemon(&config);
    hook.listen();
    wait_until("three notifications delivered", || {
        status(&config).contains("3 sent, 0 pending")
    });
    stop(daemon);

    let got: Vec<Request> = hook
        .received()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    let keys: BTreeSet<String> = got
        .iter()
        .map(|r| r.headers["x-hotfolderd-delivery"].clone())
        .collect();
    assert_eq!(keys.len(), 3, "a delivery key arrived twice");
    let by_file: BTreeMap<String, serde_json::Value> = got
        .iter()
        .map(|r| {
            assert_signed(r);
            assert_eq!(r.path, "/hook");
            let doc = r.json();
            let path = doc["source"]["path"].as_str().unwrap().to_string();
            (path, doc)
        })
        .collect();
    let one = &by_file[&inbox.join("one.wav").display().to_string()];
    assert_eq!(one["event"], "done");
    assert_eq!(one["language"], "en");
    assert!(one["model"].as_str().unwrap().contains("tiny.en"), "{one}");
    assert!(one["audio_seconds"].as_f64().unwrap() > 0.5, "{one}");
    assert_eq!(one["sha256"].as_str().unwrap().len(), 64);
    let outputs: Vec<&str> = one["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert!(
        outputs.iter().all(|p| Path::new(p).is_file()),
        "{outputs:?}"
    );
    assert!(outputs.iter().any(|p| p.ends_with("one.txt")));
    let bad = &by_file[&inbox.join("bad.wav").display().to_string()];
    assert_eq!(bad["event"], "quarantined");
    assert!(
        !bad["error"]["reason"].as_str().unwrap().is_empty(),
        "{bad}"
    );
    assert!(!bad["error"]["stage"].as_str().unwrap().is_empty(), "{bad}");

    // The audit trail shows each notification once, and the audit log agrees with it
    // through the kill.
    let trail: usize = journal_events(d, "notified");
    assert_eq!(trail, 3);
    let audit = audit_matches_journal(d);
    assert_eq!(audit.iter().filter(|e| e.1 == "notified").count(), 3);
}

/// How many events named `state` the journal holds.
fn journal_events(d: &Path, state: &str) -> usize {
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    hotfolderd::journal::State::ALL
        .iter()
        .flat_map(|s| j.in_state(*s).unwrap())
        .map(|id| {
            j.history(id)
                .unwrap()
                .iter()
                .filter(|e| e.1 == state)
                .count()
        })
        .sum()
}

/// A daemon whose webhook receiver answers `status` (0: never), with one spoken file
/// dropped: (its folder, the receiver, the config, the daemon).
fn one_file_for(status: u16, text: &str) -> (tempfile::TempDir, Hook, std::path::PathBuf, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hook = Hook::start();
    hook.status.store(status, Ordering::SeqCst);
    let config = write_daemon_config(d, "300ms");
    with_notify(&config, d, &hook, "");
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let daemon = start_daemon(&config);
    std::fs::copy(speak(d, "one", text, "en-us"), inbox.join("one.wav")).unwrap();
    (dir, hook, config, daemon)
}

#[test]
fn a_410_is_not_retried_and_waits_for_resend() {
    let (_dir, hook, config, daemon) = one_file_for(410, "Nobody wants this one.");
    wait_until("the notification given up", || {
        status(&config).contains("1 undeliverable")
    });
    // Several backoff periods (max 2 s) later: still one request.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let first = hook.received();
    assert_eq!(first.len(), 1, "a 410 was retried: {first:?}");
    let s = status(&config);
    assert!(s.contains("refused: HTTP 410"), "{s}");

    hook.status.store(200, Ordering::SeqCst);
    let listed = hotfolderd(&["notify", "list", "--state", "dead"], &config);
    assert!(listed.contains("410"), "{listed}");
    hotfolderd(&["notify", "resend", "--dead"], &config);
    wait_until("the resent notification", || hook.received().len() == 2);
    stop(daemon);
    let both = hook.received();
    assert_eq!(
        both[0].headers["x-hotfolderd-delivery"], both[1].headers["x-hotfolderd-delivery"],
        "a resend keeps its delivery key"
    );
    assert_signed(&both[1]);
    assert!(status(&config).contains("1 sent, 0 pending, 0 undeliverable"));
}

#[test]
fn s3_results_come_with_presigned_links_that_download_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hook = Hook::start();
    let w = common::moto::world(&[]);
    let queue = |name: &str| {
        w.rt.block_on(async {
            w.sqs
                .create_queue()
                .queue_name(name)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap()
        })
    };
    let notices = queue("notices");
    // A topic whose subscriber is a queue (raw delivery: the document as it was published).
    let announced = queue("announced");
    let topic = w.rt.block_on(async {
        let sns = w.moto.sns().await;
        let topic = sns
            .create_topic()
            .name("announce")
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint("arn:aws:sqs:us-east-1:123456789012:announced")
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        topic
    });
    let config = w.config(d);
    with_notify(
        &config,
        d,
        &hook,
        &format!(
            "force_path_style = true\n[[notify]]\nkind = \"sqs\"\nqueue_url = {notices:?}\nevents = [\"done\"]\n\
             [[notify]]\nkind = \"sns\"\ntopic_arn = {topic:?}\nevents = [\"done\"]\n"
        ),
    );
    let daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    );
    let audio = std::fs::read(speak(d, "up", "Uploaded and announced.", "en-us")).unwrap();
    w.upload("in/up.wav", audio);
    wait_until("the notification", || !hook.received().is_empty());
    // The same document on the queue, its key in the message attributes.
    let first_message = |url: &str| {
        w.rt.block_on(async {
            for _ in 0..60 {
                let got = w
                    .sqs
                    .receive_message()
                    .queue_url(url)
                    .message_attribute_names("All")
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .unwrap();
                if let Some(m) = got.messages.unwrap_or_default().into_iter().next() {
                    return m;
                }
            }
            panic!("nothing on {url}");
        })
    };
    let message = first_message(&notices);
    let published = first_message(&announced);
    stop(daemon);
    let via_sns: serde_json::Value = serde_json::from_str(published.body().unwrap()).unwrap();
    assert_eq!(via_sns["event"], "done");
    assert_eq!(via_sns["source"]["key"], "in/up.wav");
    let queued: serde_json::Value = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(queued["event"], "done");
    assert_eq!(queued["source"]["key"], "in/up.wav");
    let attrs = message.message_attributes().unwrap();
    assert_eq!(
        attrs["hotfolderd-delivery"].string_value(),
        queued["delivery"].as_str()
    );
    let doc = hook.received()[0].json();
    assert_ne!(
        doc["delivery"], queued["delivery"],
        "one key per notification"
    );
    assert_eq!(doc["event"], "done", "{doc}");
    assert_eq!(doc["source"]["bucket"], "media");
    assert_eq!(doc["source"]["key"], "in/up.wav");
    let outputs = doc["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 4, "{doc}");
    for o in outputs {
        let uri = o["uri"].as_str().unwrap();
        let key = uri.strip_prefix("s3://results/").unwrap();
        let url = o["url"].as_str().unwrap();
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
        let (port, path) = rest.split_once('/').unwrap();
        let (status, body) = http_get(port.parse().unwrap(), &format!("/{path}"), None);
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(
            body.as_bytes(),
            w.output(key).unwrap().as_slice(),
            "{key} differs"
        );
    }
}

/// A receiver that accepts the connection and never answers (not a refused port): each send
/// times out after the webhook's `timeout` and is retried with backoff; once the receiver
/// answers again the notification arrives, once.
#[test]
fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let (_dir, hook, config, daemon) = one_file_for(0, "Nobody answers yet.");
    wait_until("two sends left unanswered", || {
        hook.received().iter().filter(|r| r.status == 0).count() >= 2
    });
    let s = status(&config);
    assert!(s.contains("1 pending"), "{s}");
    hook.status.store(200, Ordering::SeqCst);
    wait_until("the notification answered", || {
        hook.received().iter().any(|r| r.status == 200)
    });
    stop(daemon);
    let all = hook.received();
    assert_eq!(all.iter().filter(|r| r.status == 200).count(), 1, "{all:?}");
    let keys: BTreeSet<&String> = all
        .iter()
        .map(|r| &r.headers["x-hotfolderd-delivery"])
        .collect();
    assert_eq!(keys.len(), 1, "every retry keeps its delivery key");
    assert!(status(&config).contains("1 sent, 0 pending, 0 undeliverable"));
}
