//! A real S3+SQS emulator process (moto's server) on a free 127.0.0.1 port, with clients for
//! the test itself and the environment a daemon needs to reach it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};

use super::model;
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts `moto_server` (scripts/test.sh installs it and sets HOTFOLDERD_MOTO_SERVER).
    pub fn start() -> Moto {
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
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
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

    pub async fn clients(&self) -> (aws_sdk_s3::Client, aws_sdk_sqs::Client) {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build();
        (
            aws_sdk_s3::Client::from_conf(s3),
            aws_sdk_sqs::Client::new(&shared),
        )
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

/// Buckets `media` (inputs under `in/`) and `results`, queue `uploads`, and the bucket's
/// ObjectCreated notifications sent to the queue by the emulator itself. `before` is
/// uploaded before notifications are on (the test sends its own events for those).
pub fn world(before: &[(&str, Vec<u8>)]) -> World {
    let moto = Moto::start();
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
        let config = d.join("hotfolderd.toml");
        std::fs::write(
            &config,
            format!(
                "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n{asr}\n\
                 [[s3]]\nqueue_url = {:?}\ninput_bucket = \"media\"\ninput_prefix = \"in/\"\n\
                 output_bucket = \"results\"\noutput_prefix = \"transcripts/\"\nwait_time = \"1s\"\n\
                 visibility_timeout = {visibility:?}\nforce_path_style = true\nmax_object_size = \"10MB\"\n",
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
