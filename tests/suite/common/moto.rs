//! A real S3+SQS emulator process (moto's server) on a free 127.0.0.1 port, with clients for
//! the test itself and the environment a daemon needs to reach it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};

use super::{free_port, model};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
    /// Where moto's recorder logs every request, when state must survive a kill.
    recording: Option<PathBuf>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_bin() -> String {
    let bin = std::env::var("HOTFOLDERD_MOTO_SERVER").unwrap_or_else(|_| {
        format!(
            "{}/.cache/moto-venv/bin/moto_server",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    assert!(
        std::path::Path::new(&bin).is_file(),
        "{bin} is missing: run scripts/test.sh (scripts/moto.sh installs the emulator)"
    );
    bin
}

fn spawn(port: u16, recording: Option<&Path>) -> Child {
    let mut cmd = Command::new(moto_bin());
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(r) = recording {
        cmd.env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", r);
    }
    let child = cmd.spawn().unwrap();
    // Python starting and replaying its state can take a while on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

impl Moto {
    /// Starts `moto_server` (scripts/test.sh installs it and sets HOTFOLDERD_MOTO_SERVER).
    pub fn start() -> Moto {
        let port = free_port();
        Moto {
            child: spawn(port, None),
            port,
            recording: None,
        }
    }

    /// Starts one whose requests are logged to `recording`, so that after `kill` a
    /// `restart` can rebuild its state.
    pub fn start_recorded(recording: &Path) -> Moto {
        let port = free_port();
        Moto {
            child: spawn(port, Some(recording)),
            port,
            recording: Some(recording.to_path_buf()),
        }
    }

    /// `kill -9`: everything it held in memory is gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts it again on the same port and replays the recorded requests that changed
    /// state: buckets, notification settings, queues, objects (each replayed upload makes
    /// the bucket send its event again) and outputs. Receives, deletes and visibility
    /// changes are not replayed, so every upload's event is back in the queue: a superset
    /// of what a real queue would still hold after an outage.
    pub fn restart(&mut self) {
        let recording = self.recording.clone().expect("started without a recording");
        let log = std::fs::read_to_string(&recording).unwrap();
        let kept: String = log
            .lines()
            .filter(|line| changes_state(line))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(&recording, kept).unwrap();
        self.child = spawn(self.port, Some(&recording));
        let status = self.post("/moto-api/recorder/replay-recording");
        assert!(
            status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200"),
            "{status}"
        );
    }

    /// POSTs to the emulator's own API; returns the status line.
    fn post(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            c,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What a daemon process needs in its environment to use the emulator through the
    /// standard AWS chain.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_at(self.port)
    }

    /// The same, reaching the emulator through `port` (a proxy in front of it).
    pub fn env_at(&self, port: u16) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The SDK settings every client of the emulator shares: its endpoint, dummy credentials.
    async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .load()
            .await
    }

    pub async fn clients(&self) -> (aws_sdk_s3::Client, aws_sdk_sqs::Client) {
        let shared = self.sdk_config().await;
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build();
        (
            aws_sdk_s3::Client::from_conf(s3),
            aws_sdk_sqs::Client::new(&shared),
        )
    }
}

impl Moto {
    /// An SNS client for the emulator.
    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config().await)
    }
}

const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:uploads";

pub struct World {
    pub moto: Moto,
    pub rt: tokio::runtime::Runtime,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

/// Whether a recorded request changed the emulator's state in a way worth replaying.
fn changes_state(line: &str) -> bool {
    let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
        return false;
    };
    let target = entry["headers"]
        .as_object()
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                .and_then(|(_, v)| v.as_str())
        })
        .unwrap_or_default();
    if let Some(action) = target.strip_prefix("AmazonSQS.") {
        return matches!(
            action,
            "CreateQueue" | "SetQueueAttributes" | "SendMessage" | "SendMessageBatch"
        );
    }
    !matches!(entry["method"].as_str(), Some("GET") | Some("HEAD"))
}

/// Buckets `media` (inputs under `in/`) and `results`, queue `uploads`, and the bucket's
/// ObjectCreated notifications sent to the queue by the emulator itself. `before` is
/// uploaded before notifications are on (the test sends its own events for those).
pub fn world(before: &[(&str, Vec<u8>)]) -> World {
    world_on(Moto::start(), before)
}

/// The same world on an emulator that can be killed and restarted with its state.
pub fn recorded_world(recording: &Path) -> World {
    world_on(Moto::start_recorded(recording), &[])
}

fn world_on(moto: Moto, before: &[(&str, Vec<u8>)]) -> World {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (s3, sqs) = rt.block_on(moto.clients());
    let queue_url = rt.block_on(async {
        for b in ["media", "results"] {
            s3.create_bucket().bucket(b).send().await.unwrap();
        }
        for (key, bytes) in before {
            s3.put_object()
                .bucket("media")
                .key(*key)
                .content_type("audio/wav")
                .body(ByteStream::from(bytes.clone()))
                .send()
                .await
                .unwrap();
        }
        let q = sqs
            .create_queue()
            .queue_name("uploads")
            .send()
            .await
            .unwrap();
        let notify = NotificationConfiguration::builder()
            .queue_configurations(
                QueueConfiguration::builder()
                    .queue_arn(QUEUE_ARN)
                    .events(Event::from("s3:ObjectCreated:*"))
                    .events(Event::from("s3:ObjectRemoved:*"))
                    .build()
                    .unwrap(),
            )
            .build();
        s3.put_bucket_notification_configuration()
            .bucket("media")
            .notification_configuration(notify)
            .send()
            .await
            .unwrap();
        q.queue_url.unwrap()
    });
    World {
        moto,
        rt,
        s3,
        sqs,
        queue_url,
    }
}

impl World {
    pub fn config(&self, d: &Path) -> std::path::PathBuf {
        self.config_with(d, "30s")
    }

    /// A daemon config in `d` for this world, with the given visibility timeout.
    pub fn config_with(&self, d: &Path, visibility: &str) -> std::path::PathBuf {
        self.config_full(d, visibility, "")
    }

    /// `asr` adds keys to `[asr]`.
    pub fn config_full(&self, d: &Path, visibility: &str, asr: &str) -> std::path::PathBuf {
        self.config_keys(d, visibility, asr, "")
    }

    /// `s3` adds keys to `[[s3]]`.
    pub fn config_keys(
        &self,
        d: &Path,
        visibility: &str,
        asr: &str,
        s3: &str,
    ) -> std::path::PathBuf {
        let config = d.join("hotfolderd.toml");
        std::fs::write(
            &config,
            format!(
                "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n{asr}\n\
                 [[s3]]\nqueue_url = {:?}\ninput_bucket = \"media\"\ninput_prefix = \"in/\"\n\
                 output_bucket = \"results\"\noutput_prefix = \"transcripts/\"\nwait_time = \"1s\"\n\
                 visibility_timeout = {visibility:?}\nforce_path_style = true\nmax_object_size = \"10MB\"\n{s3}\n",
                d.join("state/journal.sqlite"),
                model("tiny.en"),
                self.queue_url,
            ),
        )
        .unwrap();
        config
    }

    pub fn upload(&self, key: &str, bytes: Vec<u8>) {
        self.rt.block_on(async {
            self.s3
                .put_object()
                .bucket("media")
                .key(key)
                .content_type("audio/wav")
                .body(ByteStream::from(bytes))
                .send()
                .await
                .unwrap();
        });
    }

    /// Uploads with a SHA-256 checksum of the whole object (`--checksum-algorithm SHA256`),
    /// which S3 checks and HEAD returns.
    pub fn upload_sha256(&self, key: &str, bytes: Vec<u8>) {
        self.rt.block_on(async {
            self.s3
                .put_object()
                .bucket("media")
                .key(key)
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .unwrap();
        });
    }

    /// Uploads without an event (the bucket sends none after `silence_bucket`); the ETag.
    pub fn upload_etag(&self, key: &str, bytes: Vec<u8>) -> String {
        self.upload(key, bytes);
        self.etag(key)
    }

    /// The ETag of input object `key`, unquoted, as S3 events carry it.
    pub fn etag(&self, key: &str) -> String {
        self.rt.block_on(async {
            let h = self
                .s3
                .head_object()
                .bucket("media")
                .key(key)
                .send()
                .await
                .unwrap();
            h.e_tag().unwrap().trim_matches('"').to_string()
        })
    }

    /// The bucket stops sending events: the test sends its own (`send_body`).
    pub fn silence_bucket(&self) {
        self.rt.block_on(async {
            self.s3
                .put_bucket_notification_configuration()
                .bucket("media")
                .notification_configuration(NotificationConfiguration::builder().build())
                .send()
                .await
                .unwrap();
        });
    }

    pub fn delete_input(&self, key: &str) {
        self.rt.block_on(async {
            self.s3
                .delete_object()
                .bucket("media")
                .key(key)
                .send()
                .await
                .unwrap();
        });
    }

    pub fn send_body(&self, body: String) {
        self.rt.block_on(async {
            self.sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        });
    }

    pub fn output(&self, key: &str) -> Option<Vec<u8>> {
        self.rt.block_on(async {
            let r = self
                .s3
                .get_object()
                .bucket("results")
                .key(key)
                .send()
                .await
                .ok()?;
            Some(r.body.collect().await.ok()?.into_bytes().to_vec())
        })
    }

    /// Every key in the output bucket.
    pub fn output_keys(&self) -> std::collections::BTreeSet<String> {
        self.rt.block_on(async {
            let mut keys = std::collections::BTreeSet::new();
            let mut pages = self
                .s3
                .list_objects_v2()
                .bucket("results")
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for o in page.unwrap().contents() {
                    keys.extend(o.key().map(str::to_string));
                }
            }
            keys
        })
    }

    /// The multipart uploads in progress in `results` under `prefix`, each with how many
    /// parts it has. (The parts are counted from the raw answer: moto names its ListParts
    /// root element differently from S3, and the SDK refuses it.)
    pub fn uploads_in_progress(&self, prefix: &str) -> Vec<(String, usize)> {
        let uploads = self.rt.block_on(async {
            let listed = self
                .s3
                .list_multipart_uploads()
                .bucket("results")
                .prefix(prefix)
                .send()
                .await
                .unwrap();
            listed
                .uploads()
                .iter()
                .filter_map(|u| Some((u.key()?.to_string(), u.upload_id()?.to_string())))
                .collect::<Vec<_>>()
        });
        uploads
            .into_iter()
            .map(|(key, id)| {
                let (status, body) = crate::common::http_get(
                    self.moto.port,
                    &format!("/results/{key}?uploadId={id}"),
                    None,
                );
                assert_eq!(status, 200, "{body}");
                (key, body.matches("<Part>").count())
            })
            .collect()
    }

    /// User metadata `name` of an output object.
    pub fn output_meta(&self, key: &str, name: &str) -> Option<String> {
        self.rt.block_on(async {
            let head = self
                .s3
                .head_object()
                .bucket("results")
                .key(key)
                .send()
                .await
                .ok()?;
            head.metadata()?.get(name).cloned()
        })
    }

    /// Messages still in the queue, visible or in flight.
    pub fn messages_left(&self) -> (i64, i64) {
        self.rt.block_on(async {
            use aws_sdk_sqs::types::QueueAttributeName as A;
            let a = self
                .sqs
                .get_queue_attributes()
                .queue_url(&self.queue_url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .unwrap();
            let get = |n: A| {
                a.attributes()
                    .and_then(|m| m.get(&n))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1)
            };
            (
                get(A::ApproximateNumberOfMessages),
                get(A::ApproximateNumberOfMessagesNotVisible),
            )
        })
    }
}
