//! [`Admin`]: the broker's admin API on its HTTP port — list topics, describe one (its layout
//! and each partition's offsets), create one, delete one. Every call has a timeout and fails with the
//! crate's [`ClientError`]; an error status is [`ClientError::Http`] with the broker's sentence.
//!
//! [`Layouts`] is what a producer with `admin` set uses to learn a topic's layout once, so it
//! batches keyed messages per partition rather than per key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use shardlog_wire::ring::TopicLayout;
use shardlog_wire::startup::validate_topic;

use crate::http::{exchange, HttpAnswer};
use crate::ClientError;

/// A topic as `list_topics` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: u32,
}

/// A topic as `describe_topic` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    /// The layout keys are routed by (see `shardlog_wire::ring`).
    pub layout: TopicLayout,
    /// Every partition, in index order.
    pub partitions: Vec<PartitionDescription>,
}

/// One partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionDescription {
    /// Its index `j` in the layout.
    pub partition: u32,
    /// The start of its token range (with `range_index`, the partition's name).
    #[serde(deserialize_with = "token")]
    pub token: i64,
    pub range_index: u8,
    /// The broker shard that owns it.
    pub shard: usize,
    /// The first offset still available.
    pub first_offset: i64,
    /// The offset the next message will get.
    pub next_offset: i64,
    /// Bytes on the broker's disk.
    pub bytes: u64,
}

/// Where a time falls in a partition, as `offset_for_time` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeOffset {
    /// The first offset whose record timestamp is at or after the time (in offset order);
    /// `next_offset` when every record is older, `first_offset` when the time is before all.
    pub offset: i64,
    /// The first offset still available.
    pub first_offset: i64,
    /// The offset the next message will get.
    pub next_offset: i64,
}

/// What `create_topic` did.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Created {
    pub topic: String,
    pub partitions: u32,
    /// False when the topic already existed (with the partition count asked for, if any).
    pub created: bool,
}

/// What `delete_topic` removed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Deleted {
    pub topic: String,
    /// How many partitions it had (their files are gone).
    pub partitions: u32,
    /// The consumer groups that had committed offsets for it (now dropped).
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct TopicList {
    topics: Vec<TopicSummary>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutJson {
    gen: u32,
    token_ranges: u32,
    ranges_per_token_range: u32,
}

#[derive(Deserialize)]
struct DescriptionJson {
    name: String,
    layout: LayoutJson,
    partitions: Vec<PartitionDescription>,
}

/// The broker sends tokens as decimal strings (64-bit integers survive every JSON parser
/// that way); a number is accepted too.
fn token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Token {
        Text(String),
        Number(i64),
    }
    match Token::deserialize(d)? {
        Token::Number(n) => Ok(n),
        Token::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// A client of the admin API of one broker's HTTP port. Cheap to clone; each call makes its
/// own connection.
#[derive(Debug, Clone)]
pub struct Admin {
    addr: String,
    timeout: Duration,
}

impl Admin {
    /// A client of the HTTP port at `http_addr` (`host:port`, e.g. `127.0.0.1:9252`), with a
    /// 10 s timeout per call.
    pub fn new(http_addr: impl Into<String>) -> Admin {
        Admin {
            addr: http_addr.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The same client with another timeout per call.
    pub fn with_timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        self
    }

    /// Every topic of the broker, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>, ClientError> {
        let list: TopicList = self.call("GET", "/v1/topics", b"").await?;
        Ok(list.topics)
    }

    /// The topic's layout and its partitions' offsets. An unknown topic is
    /// [`ClientError::Http`] with status 404 (describing never creates one).
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        check(name)?;
        let d: DescriptionJson = self.call("GET", &format!("/v1/topics/{name}"), b"").await?;
        let layout = TopicLayout {
            gen: d.layout.gen,
            token_ranges: d.layout.token_ranges,
            ranges_per_token_range: d.layout.ranges_per_token_range,
        };
        if layout.partitions() == 0 || d.partitions.len() != layout.partitions() as usize {
            return Err(ClientError::BadResponse(format!(
                "a layout of {} partitions described with {}",
                layout.partitions(),
                d.partitions.len()
            )));
        }
        Ok(TopicDescription {
            name: d.name,
            layout,
            partitions: d.partitions,
        })
    }

    /// Creates the topic with `partitions` partitions (`None`: the broker's default layout).
    /// Idempotent: an existing topic is `created: false`, unless it has another partition
    /// count than asked for (then [`ClientError::Http`] 409).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: Option<u32>,
    ) -> Result<Created, ClientError> {
        check(name)?;
        let body = partitions
            .map(|n| format!("{{\"partitions\":{n}}}"))
            .unwrap_or_default();
        self.call("POST", &format!("/v1/topics/{name}"), body.as_bytes())
            .await
    }

    /// Deletes the topic on the broker: its partitions' files, its layout, and every consumer
    /// group's committed offsets for it. Requests in flight on it fail; a topic created again
    /// under the name starts empty. An unknown topic is [`ClientError::Http`] with status 404
    /// (see [`ClientError::is_not_found`]); a deletion of it already under way, 503.
    pub async fn delete_topic(&self, name: &str) -> Result<Deleted, ClientError> {
        check(name)?;
        self.call("DELETE", &format!("/v1/topics/{name}"), b"")
            .await
    }

    /// One exchange within the timeout; a 2xx body parsed as `T`, any other status an error.
    /// The offset of the first record of `partition` whose timestamp is at or after `time_us`
    /// (μs since the Unix epoch), from the broker's time index, with the partition's bounds.
    pub async fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        time_us: i64,
    ) -> Result<TimeOffset, ClientError> {
        check(topic)?;
        let time = shardlog_wire::time::format_time_us(time_us);
        let path = format!("/v1/topics/{topic}/partitions/{partition}/offset?time={time}");
        self.call("GET", &path, b"").await
    }

    /// One exchange, answered as it came: the status and the body, whatever the status (for
    /// a tool, or a broker passing an admin request on to the broker that can answer it).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let answer = tokio::time::timeout(self.timeout, exchange(&self.addr, method, path, body))
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))??;
        Ok((answer.status, answer.body))
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<T, ClientError> {
        let answer = tokio::time::timeout(self.timeout, exchange(&self.addr, method, path, body))
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))??;
        decode(answer)
    }
}

/// A topic name the broker would refuse anyway; checked here, which also keeps it safe to put
/// in a path unescaped (only `A-Z a-z 0-9 . _ -`).
fn check(name: &str) -> Result<(), ClientError> {
    validate_topic(name).map_err(|e| ClientError::Invalid(e.to_string()))
}

/// A success's JSON, or the error an answer stands for.
fn decode<T: DeserializeOwned>(answer: HttpAnswer) -> Result<T, ClientError> {
    if !(200..300).contains(&answer.status) {
        return Err(ClientError::Http {
            status: answer.status,
            message: error_message(&answer.body),
        });
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| ClientError::BadResponse(format!("unexpected JSON: {e}")))
}

/// The sentence of a broker's error body, `{status} {reason}: {sentence}`.
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let starts_with_status = text.bytes().take(3).all(|b| b.is_ascii_digit());
    match text.split_once(": ") {
        Some((_, sentence)) if starts_with_status => sentence.to_string(),
        _ => text.to_string(),
    }
}

/// Topic layouts a producer routes by: set by hand, or fetched once per topic through the
/// admin API when the producer has one.
pub(crate) struct Layouts {
    admin: Option<Admin>,
    /// Per topic asked about (or set): its layout, or `None` when the broker could not give
    /// one. A topic absent here was never asked about.
    known: Mutex<HashMap<String, Option<TopicLayout>>>,
    /// Held while a layout is fetched, so a topic is asked about once however many sends race.
    asking: tokio::sync::Mutex<()>,
}

impl Layouts {
    pub fn new(admin: Option<Admin>) -> Layouts {
        Layouts {
            admin,
            known: Mutex::new(HashMap::new()),
            asking: tokio::sync::Mutex::new(()),
        }
    }

    pub fn set(&self, topic: &str, layout: TopicLayout) {
        lock(&self.known).insert(topic.to_string(), Some(layout));
    }

    /// The topic's layout if known; on the first call for a topic, with an admin client,
    /// asks the broker first. A failure (the topic does not exist yet, the HTTP port is not
    /// reachable) leaves the topic without a layout: its keyed messages are then batched per
    /// key, for good, so one key's messages never switch between routes (and connections)
    /// while some are in flight.
    pub async fn get(&self, topic: &str) -> Option<TopicLayout> {
        if let Some(known) = lock(&self.known).get(topic) {
            return *known;
        }
        let admin = self.admin.as_ref()?;
        let _asking = self.asking.lock().await;
        if let Some(known) = lock(&self.known).get(topic) {
            return *known;
        }
        let layout = admin.describe_topic(topic).await.ok().map(|d| d.layout);
        *lock(&self.known).entry(topic.to_string()).or_insert(layout)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn answer(status: u16, body: &str) -> HttpAnswer {
        HttpAnswer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_description_decodes_with_string_or_number_tokens() {
        let body = r#"{"name":"t","layout":{"gen":1,"tokenRanges":1,"rangesPerTokenRange":2,
            "partitions":2},"partitions":[
            {"partition":0,"token":"-9223372036854775808","rangeIndex":0,"shard":0,
             "firstOffset":0,"nextOffset":5,"bytes":4096},
            {"partition":1,"token":-9223372036854775808,"rangeIndex":1,"shard":0,
             "firstOffset":0,"nextOffset":0,"bytes":0}]}"#;
        let d: DescriptionJson = decode(answer(200, body)).unwrap();
        assert_eq!(d.partitions[0].token, i64::MIN);
        assert_eq!(d.partitions[1].token, i64::MIN);
        assert_eq!(d.partitions[0].next_offset, 5);
        assert_eq!(d.layout.ranges_per_token_range, 2);
    }

    #[test]
    fn an_error_status_carries_the_brokers_sentence() {
        let e = decode::<TopicList>(answer(404, "404 Not Found: topic 'x' does not exist\n"))
            .unwrap_err();
        match e {
            ClientError::Http { status, message } => {
                assert_eq!(status, 404);
                assert_eq!(message, "topic 'x' does not exist");
            }
            e => panic!("{e:?}"),
        }
        let e = decode::<TopicList>(answer(200, "{\"topics\":3}")).unwrap_err();
        assert!(matches!(e, ClientError::BadResponse(_)), "{e:?}");
        assert_eq!(error_message(b"odd: body"), "odd: body");
    }

    /// A one-shot HTTP server on loopback answering every connection with `answer` (or
    /// nothing, when it is `None`), counting the connections.
    async fn server(answer: Option<&'static str>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    match answer {
                        Some(body) => {
                            let head = format!(
                                "HTTP/1.1 {}\r\ncontent-length: {}\r\n\r\n",
                                if body.starts_with('{') {
                                    "200 OK"
                                } else {
                                    "404 Not Found"
                                },
                                body.len()
                            );
                            let _ = sock.write_all(head.as_bytes()).await;
                            let _ = sock.write_all(body.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(5)).await,
                    }
                });
            }
        });
        (addr, count)
    }

    #[tokio::test]
    async fn a_layout_is_asked_for_once_found_or_not() {
        let described = r#"{"name":"t","layout":{"gen":1,"tokenRanges":1,
            "rangesPerTokenRange":1,"partitions":1},"partitions":[{"partition":0,
            "token":"-9223372036854775808","rangeIndex":0,"shard":0,"firstOffset":0,
            "nextOffset":0,"bytes":0}]}"#;
        let (addr, asked) = server(Some(described)).await;
        let layouts = Layouts::new(Some(Admin::new(addr)));
        for _ in 0..3 {
            assert_eq!(layouts.get("t").await, Some(TopicLayout::new(1, 1)));
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);

        let (addr, asked) = server(Some("404 Not Found: topic 't' does not exist\n")).await;
        let layouts = Layouts::new(Some(Admin::new(addr)));
        assert_eq!(layouts.get("t").await, None);
        assert_eq!(layouts.get("t").await, None);
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "not found is remembered too"
        );
        layouts.set("t", TopicLayout::new(2, 2));
        assert_eq!(layouts.get("t").await, Some(TopicLayout::new(2, 2)));

        assert_eq!(Layouts::new(None).get("t").await, None);
    }

    #[tokio::test]
    async fn a_call_without_an_answer_times_out() {
        let (addr, _) = server(None).await;
        let admin = Admin::new(addr).with_timeout(Duration::from_millis(100));
        let e = admin.list_topics().await.unwrap_err();
        assert!(matches!(e, ClientError::Timeout(_)), "{e:?}");
        assert!(e.is_retryable());
    }

    #[test]
    fn names_are_checked_before_anything_is_sent() {
        let admin = Admin::new("127.0.0.1:1");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(admin.describe_topic("a/../b")).unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e:?}");
    }
}

#[path = "admin_groups.rs"]
mod groups;
pub use groups::{
    GroupDescription, GroupMember, GroupPartition, GroupSummary, ResetTo, TopicPartition,
};
