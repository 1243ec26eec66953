//! S3 event notifications as they arrive in an SQS message body, in the three shapes users
//! have: S3 → SQS directly (and S3 → SNS → SQS with raw delivery, the same JSON), S3 → SNS →
//! SQS wrapped in an SNS envelope, and S3 → EventBridge → SQS. `s3:TestEvent` (sent when a
//! notification is configured) is recognised and skipped.
//!
//! Keys in S3 notifications are URL-encoded form-style (`+` is a space, then `%XX`); keys in
//! EventBridge events are not encoded. Fields AWS documents as optional (`size` on deletes,
//! `versionId`, `sequencer`, `eTag`, `userIdentity`, …) are optional here too.

use serde::Deserialize;

/// What happened to the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created,
    Removed,
    /// Restores, tagging, ACL changes, lifecycle transitions…: never a job.
    Other,
}

/// One object event, whatever shape it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub bucket: String,
    /// The object key, decoded.
    pub key: String,
    pub size: Option<u64>,
    pub change: Change,
    /// `ObjectCreated:Put`, `Object Created`, … as sent.
    pub name: String,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<String>,
}

/// What one message body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Events(Vec<ObjectEvent>),
    /// `s3:TestEvent`: nothing to do.
    Test,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("message body is JSON but not an S3 event (S3 notification, SNS-wrapped, or EventBridge); top-level keys: {0}")]
    Unrecognised(String),
    #[error("S3 event is missing or has a malformed field: {0}")]
    Malformed(String),
    #[error("object key {0:?} is not valid URL encoding")]
    BadKey(String),
}

#[derive(Deserialize)]
struct Records {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_source: Option<String>,
    event_name: String,
    s3: RecordS3,
}

#[derive(Deserialize)]
struct RecordS3 {
    bucket: Named,
    object: RecordObject,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordObject {
    key: String,
    size: Option<u64>,
    e_tag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
struct EventBridge {
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: BridgeDetail,
}

#[derive(Deserialize)]
struct BridgeDetail {
    bucket: Named,
    object: BridgeObject,
}

#[derive(Deserialize)]
struct BridgeObject {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Parses one SQS message body.
pub fn parse_body(body: &str) -> Result<Body, EventError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    parse_value(value, true)
}

fn malformed(e: serde_json::Error) -> EventError {
    EventError::Malformed(e.to_string())
}

fn parse_value(value: serde_json::Value, may_be_wrapped: bool) -> Result<Body, EventError> {
    let obj = value
        .as_object()
        .ok_or_else(|| EventError::Unrecognised("(not an object)".into()))?;
    if obj.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(Body::Test);
    }
    if obj.contains_key("Records") {
        let r: Records = serde_json::from_value(value).map_err(malformed)?;
        return r
            .records
            .into_iter()
            .map(from_record)
            .collect::<Result<_, _>>()
            .map(Body::Events);
    }
    if may_be_wrapped && obj.get("Type").and_then(|t| t.as_str()) == Some("Notification") {
        let env: SnsEnvelope = serde_json::from_value(value).map_err(malformed)?;
        let inner: serde_json::Value = serde_json::from_str(&env.message)
            .map_err(|e| EventError::NotJson(format!("SNS Message: {e}")))?;
        return parse_value(inner, false);
    }
    if obj.get("source").and_then(|s| s.as_str()) == Some("aws.s3")
        && obj.contains_key("detail-type")
    {
        let ev: EventBridge = serde_json::from_value(value).map_err(malformed)?;
        let change = match ev.detail_type.as_str() {
            "Object Created" => Change::Created,
            "Object Deleted" => Change::Removed,
            _ => Change::Other,
        };
        let o = ev.detail.object;
        return Ok(Body::Events(vec![ObjectEvent {
            bucket: ev.detail.bucket.name,
            key: o.key,
            size: o.size,
            change,
            name: ev.detail_type,
            etag: o.etag,
            version_id: o.version_id,
            sequencer: o.sequencer,
        }]));
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    Err(EventError::Unrecognised(keys.join(", ")))
}

fn from_record(r: Record) -> Result<ObjectEvent, EventError> {
    if let Some(src) = r.event_source.as_deref().filter(|s| *s != "aws:s3") {
        return Err(EventError::Malformed(format!(
            "eventSource is {src:?}, not \"aws:s3\""
        )));
    }
    let change = if r.event_name.starts_with("ObjectCreated:") {
        Change::Created
    } else if r.event_name.starts_with("ObjectRemoved:") {
        Change::Removed
    } else {
        Change::Other
    };
    let o = r.s3.object;
    Ok(ObjectEvent {
        bucket: r.s3.bucket.name,
        key: decode_key(&o.key)?,
        size: o.size,
        change,
        name: r.event_name,
        etag: o.e_tag,
        version_id: o.version_id,
        sequencer: o.sequencer,
    })
}

/// Form-style URL decoding, as S3 notifications encode keys: `+` is a space, then `%XX`.
/// The result must be UTF-8 (S3 keys are).
pub fn decode_key(encoded: &str) -> Result<String, EventError> {
    let bad = || EventError::BadKey(encoded.to_string());
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes as AWS documents them (S3 notification event structure, version 2.1; SNS
    // message format; S3 events in EventBridge), with the optional fields present or absent
    // as they are in real traffic.
    const DIRECT: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
        "eventTime":"2026-11-23T12:00:00.000Z","eventName":"ObjectCreated:Put",
        "userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},"requestParameters":{"sourceIPAddress":"203.0.113.7"},
        "responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8"},
        "s3":{"s3SchemaVersion":"1.0","configurationId":"uploads","bucket":{"name":"media",
        "ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::media"},
        "object":{"key":"in/team+a/caf%C3%A9+%2B+call%281%29.wav","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e",
        "versionId":"096fKKXTRTtl3on89fVO.nfljtsv6qko","sequencer":"0055AED6DCD90281E5"}}}]}"#;

    const TEST_EVENT: &str = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-23T12:00:00.000Z",
        "Bucket":"media","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;

    const EVENTBRIDGE: &str = r#"{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created",
        "source":"aws.s3","account":"111122223333","time":"2026-11-23T12:00:00Z","region":"ca-central-1",
        "resources":["arn:aws:s3:::media"],"detail":{"version":"0","bucket":{"name":"media"},
        "object":{"key":"in/2026-11-23T12:00:00 meeting+notes.wav","size":5,"etag":"b1946ac92492d2347c6235b4d2611184","sequencer":"00617F08299329D189"},
        "request-id":"N4N7GDK58NMKJ12R","requester":"123456789012","source-ip-address":"1.2.3.4","reason":"PutObject"}}"#;

    fn sns_wrapped(inner: &str) -> String {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
            "Subject": "Amazon S3 Notification",
            "Message": inner,
            "Timestamp": "2026-11-23T12:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
        })
        .to_string()
    }

    fn only_event(body: &str) -> ObjectEvent {
        match parse_body(body).unwrap() {
            Body::Events(mut e) if e.len() == 1 => e.remove(0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_direct_notification_gives_the_decoded_key() {
        let e = only_event(DIRECT);
        assert_eq!(e.bucket, "media");
        assert_eq!(e.key, "in/team a/café + call(1).wav");
        assert_eq!((e.size, e.change.clone()), (Some(1024), Change::Created));
        assert_eq!(e.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
    }

    #[test]
    fn sns_wrapped_and_raw_delivery_read_the_same() {
        assert_eq!(only_event(&sns_wrapped(DIRECT)), only_event(DIRECT));
        assert_eq!(parse_body(&sns_wrapped(TEST_EVENT)).unwrap(), Body::Test);
    }

    #[test]
    fn eventbridge_keys_are_taken_as_they_are() {
        let e = only_event(EVENTBRIDGE);
        assert_eq!(e.key, "in/2026-11-23T12:00:00 meeting+notes.wav");
        assert_eq!((e.change, e.size), (Change::Created, Some(5)));
        assert_eq!(e.version_id, None);
    }

    #[test]
    fn the_test_event_is_recognised() {
        assert_eq!(parse_body(TEST_EVENT).unwrap(), Body::Test);
    }

    #[test]
    fn deletes_and_other_events_are_told_apart_and_optional_fields_may_be_absent() {
        let body = r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"media"},
            "object":{"key":"in/x.wav"}}},{"eventSource":"aws:s3","eventName":"ObjectRestore:Completed",
            "s3":{"bucket":{"name":"media"},"object":{"key":"in/y.wav","size":9}}}]}"#;
        let Body::Events(e) = parse_body(body).unwrap() else {
            panic!()
        };
        assert_eq!(e[0].change, Change::Removed);
        assert_eq!(e[0].size, None);
        assert_eq!(e[1].change, Change::Other);
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(matches!(
            parse_body("not json {"),
            Err(EventError::NotJson(_))
        ));
        assert!(matches!(
            parse_body(r#"{"hello":"world","a":1}"#),
            Err(EventError::Unrecognised(k)) if k == "a, hello"
        ));
        assert!(matches!(
            parse_body(r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#),
            Err(EventError::Malformed(m)) if m.contains("s3")
        ));
        assert!(matches!(
            parse_body(&sns_wrapped("not json")),
            Err(EventError::NotJson(m)) if m.starts_with("SNS Message")
        ));
        assert!(matches!(
            parse_body(
                r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%2"}}}]}"#
            ),
            Err(EventError::BadKey(_))
        ));
        assert!(matches!(
            parse_body(r#"{"Records":[{"eventSource":"aws:sqs","eventName":"x","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#),
            Err(EventError::Malformed(m)) if m.contains("aws:sqs")
        ));
    }

    #[test]
    fn keys_decode_form_style() {
        assert_eq!(decode_key("a+b%2Bc%2Fd").unwrap(), "a b+c/d");
        assert_eq!(decode_key("%E2%98%83").unwrap(), "☃");
        assert!(decode_key("%FF").is_err(), "not UTF-8");
        assert!(decode_key("%zz").is_err());
        assert!(decode_key("%").is_err());
    }
}
