//! Bodies of the framed consumer operations (see `docs/protocol.md, "Consumer operations"`). Strings are
//! `len u8 | UTF-8 bytes`; lists are `count u16 | item*`; all integers big-endian.
//!
//! ```text
//! REGISTER  policy u8 (0 earliest, 1 latest) | consumer id str | group str | topics u16 | topic str*
//! POLL      consumer id str | [max wait ms u32]     (absent = answer at once)
//! COMMIT    consumer id str
//! GOODBYE   consumer id str
//! ```
//!
//! The answer to POLL is a POLL_RESPONSE frame whose body is exactly the seed's poll response
//! ([`super::poll`]).

use std::collections::HashSet;
use std::hash::Hash;

use super::reader::Reader;
use super::startup::validate_topic;
use super::writer::Put;
use super::WireError;

/// Where a group that has never committed anything for a topic starts reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPolicy {
    /// From the earliest offset still available.
    #[default]
    Earliest,
    /// From the end of the log at registration: only messages produced afterwards.
    Latest,
}

impl StartPolicy {
    pub fn from_u8(b: u8) -> Result<StartPolicy, WireError> {
        match b {
            0 => Ok(StartPolicy::Earliest),
            1 => Ok(StartPolicy::Latest),
            other => Err(WireError::Malformed(format!(
                "start policy {other} is not 0 (earliest) or 1 (latest)"
            ))),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            StartPolicy::Earliest => 0,
            StartPolicy::Latest => 1,
        }
    }
}

/// A parsed REGISTER body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBody {
    pub policy: StartPolicy,
    pub consumer_id: String,
    pub group: String,
    pub topics: Vec<String>,
}

/// A parsed POLL body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollBody {
    pub consumer_id: String,
    /// Long poll: wait up to this long for data when there is none.
    pub max_wait_ms: Option<u32>,
}

/// A consumer id is 1–255 bytes of UTF-8 without control characters.
pub fn validate_consumer_id(id: &str) -> Result<(), WireError> {
    if id.is_empty() {
        return Err(WireError::Malformed("consumer id is empty".into()));
    }
    if id.chars().any(|c| c.is_control()) {
        return Err(WireError::Malformed(format!(
            "consumer id '{}' contains a control character",
            id.escape_debug()
        )));
    }
    Ok(())
}

/// A group name follows the topic rules (`[A-Za-z0-9._-]`, 1–249 bytes): it names a file.
pub fn validate_group(group: &str) -> Result<(), WireError> {
    validate_topic(group).map_err(|e| match e {
        WireError::InvalidTopic(m) => WireError::Malformed(format!("invalid group name: {m}")),
        other => other,
    })
}

/// Keeps the first occurrence of each item, in order. Linear in the number of items (a hash
/// set, not a search of the kept items per item): a REGISTER may name 65,535 topics.
pub fn first_occurrences<T: Hash + Eq>(items: Vec<T>) -> Vec<T> {
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(items.len());
        items.iter().map(|t| seen.insert(t)).collect()
    };
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(t, k)| k.then_some(t))
        .collect()
}

impl RegisterBody {
    /// Decodes and validates a REGISTER body (duplicate topics are dropped).
    pub fn decode(body: &[u8]) -> Result<RegisterBody, WireError> {
        let mut r = Reader::new(body);
        let policy = StartPolicy::from_u8(r.u8("start policy")?)?;
        let consumer_id = r.string("consumer id")?;
        validate_consumer_id(&consumer_id)?;
        let group = r.string("group")?;
        validate_group(&group)?;
        let count = r.u16("topic count")?;
        if count == 0 {
            return Err(WireError::Malformed(
                "REGISTER names no topic; subscribe to at least one".into(),
            ));
        }
        let mut topics = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let t = r.string("topic")?;
            validate_topic(&t)?;
            topics.push(t);
        }
        r.finish("REGISTER")?;
        let topics = first_occurrences(topics);
        Ok(RegisterBody {
            policy,
            consumer_id,
            group,
            topics,
        })
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_u8(self.policy.as_u8());
        dst.put_str_u8(&self.consumer_id);
        dst.put_str_u8(&self.group);
        let topics = &self.topics[..self.topics.len().min(u16::MAX as usize)];
        dst.put_u16(topics.len() as u16);
        for t in topics {
            dst.put_str_u8(t);
        }
    }
}

impl PollBody {
    pub fn decode(body: &[u8]) -> Result<PollBody, WireError> {
        let mut r = Reader::new(body);
        let consumer_id = r.string("consumer id")?;
        validate_consumer_id(&consumer_id)?;
        let max_wait_ms = match r.remaining() {
            0 => None,
            4 => Some(r.u32("max wait")?),
            n => {
                return Err(WireError::Malformed(format!(
                "POLL body has {n} bytes after the consumer id; expected none or a 4-byte max wait"
            )))
            }
        };
        Ok(PollBody {
            consumer_id,
            max_wait_ms,
        })
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_str_u8(&self.consumer_id);
        if let Some(ms) = self.max_wait_ms {
            dst.put_u32(ms);
        }
    }
}

/// A COMMIT or GOODBYE body: just the consumer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerIdBody {
    pub consumer_id: String,
}

impl ConsumerIdBody {
    /// Decodes the body of operation `op` (named in the error for trailing bytes).
    pub fn decode(body: &[u8], op: &str) -> Result<ConsumerIdBody, WireError> {
        let mut r = Reader::new(body);
        let consumer_id = r.string("consumer id")?;
        validate_consumer_id(&consumer_id)?;
        r.finish(op)?;
        Ok(ConsumerIdBody { consumer_id })
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_str_u8(&self.consumer_id);
    }
}

/// Parses and validates a REGISTER body.
pub fn parse_register(body: &[u8]) -> Result<RegisterBody, WireError> {
    RegisterBody::decode(body)
}

/// Encodes a REGISTER body.
pub fn encode_register(b: &RegisterBody, dst: &mut Vec<u8>) {
    b.encode(dst);
}

/// Parses a POLL body.
pub fn parse_poll(body: &[u8]) -> Result<PollBody, WireError> {
    PollBody::decode(body)
}

/// Encodes a POLL body.
pub fn encode_poll(b: &PollBody, dst: &mut Vec<u8>) {
    b.encode(dst);
}

/// Parses a COMMIT or GOODBYE body: just the consumer id.
pub fn parse_consumer_id(body: &[u8], op: &str) -> Result<String, WireError> {
    ConsumerIdBody::decode(body, op).map(|b| b.consumer_id)
}

/// Encodes a COMMIT or GOODBYE body.
pub fn encode_consumer_id(id: &str, dst: &mut Vec<u8>) {
    dst.put_str_u8(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> RegisterBody {
        RegisterBody {
            policy: StartPolicy::Latest,
            consumer_id: "c-1".into(),
            group: "g".into(),
            topics: vec!["a".into(), "b.c".into()],
        }
    }

    #[test]
    fn register_layout_and_round_trip() {
        let mut b = Vec::new();
        encode_register(&reg(), &mut b);
        assert_eq!(b, b"\x01\x03c-1\x01g\x00\x02\x01a\x03b.c");
        assert_eq!(parse_register(&b).unwrap(), reg());
        assert_eq!(RegisterBody::decode(&b).unwrap(), reg());
        let mut again = Vec::new();
        reg().encode(&mut again);
        assert_eq!(again, b);
        for n in 0..b.len() {
            assert!(parse_register(&b[..n]).is_err(), "{n}");
        }
        b.push(0);
        assert!(parse_register(&b).is_err());
    }

    #[test]
    fn the_documented_session_bytes() {
        // docs/protocol.md, "Consumer operations", "A consumer session, byte by byte".
        let mut b = Vec::new();
        encode_register(
            &RegisterBody {
                policy: StartPolicy::Earliest,
                consumer_id: "c1".into(),
                group: "g".into(),
                topics: vec!["t".into()],
            },
            &mut b,
        );
        assert_eq!(b, [0, 2, b'c', b'1', 1, b'g', 0, 1, 1, b't']);
        let mut p = Vec::new();
        encode_poll(
            &PollBody {
                consumer_id: "c1".into(),
                max_wait_ms: Some(5000),
            },
            &mut p,
        );
        assert_eq!(p, [2, b'c', b'1', 0, 0, 0x13, 0x88]);
    }

    #[test]
    fn register_rejects_bad_fields() {
        let enc = |f: &dyn Fn(&mut RegisterBody)| {
            let mut r = reg();
            f(&mut r);
            let mut b = Vec::new();
            encode_register(&r, &mut b);
            parse_register(&b)
        };
        assert!(enc(&|r| r.topics.clear()).is_err());
        assert!(enc(&|r| r.topics.push("a/b".into())).is_err());
        assert!(enc(&|r| r.group = "x y".into()).is_err());
        assert!(enc(&|r| r.consumer_id = String::new()).is_err());
        assert!(enc(&|r| r.consumer_id = "a\nb".into()).is_err());
        let dup = enc(&|r| r.topics.push("a".into())).unwrap();
        assert_eq!(dup.topics, vec!["a", "b.c"]);
        assert!(parse_register(b"\x02\x01c\x01g\x00\x01\x01a").is_err());
    }

    /// Counts comparisons, to check that deduplicating is linear without timing it.
    #[derive(Debug)]
    struct Counted<'a>(u32, &'a std::cell::Cell<u64>);

    impl std::hash::Hash for Counted<'_> {
        fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
            self.0.hash(h);
        }
    }

    impl PartialEq for Counted<'_> {
        fn eq(&self, other: &Self) -> bool {
            self.1.set(self.1.get() + 1);
            self.0 == other.0
        }
    }
    impl Eq for Counted<'_> {}

    #[test]
    fn deduplicating_65535_names_takes_linear_work() {
        let compares = std::cell::Cell::new(0u64);
        let n = u16::MAX as u32;
        let distinct: Vec<Counted> = (0..n).map(|i| Counted(i, &compares)).collect();
        let kept = first_occurrences(distinct);
        assert_eq!(kept.len(), n as usize);
        assert!(kept.iter().enumerate().all(|(i, c)| c.0 == i as u32));
        // A search of the kept items per item makes n²/2 ≈ 2.1e9 comparisons.
        assert!(
            compares.get() <= 4 * n as u64,
            "{} comparisons",
            compares.get()
        );
        compares.set(0);
        let repeated: Vec<Counted> = (0..n).map(|i| Counted(i % 7, &compares)).collect();
        let kept = first_occurrences(repeated);
        assert_eq!(
            kept.iter().map(|c| c.0).collect::<Vec<_>>(),
            (0..7).collect::<Vec<_>>()
        );
        assert!(
            compares.get() <= 4 * n as u64,
            "{} comparisons",
            compares.get()
        );
    }

    #[test]
    fn the_largest_register_body_decodes() {
        // 65,535 distinct topic names of 249 bytes (the most a count and a name allow; 16 MiB,
        // which a --max-frame-size up to 256 MiB admits), then the same count of one name.
        let name = |i: u32| format!("{i:0>249}");
        let body = RegisterBody {
            policy: StartPolicy::Earliest,
            consumer_id: "c".repeat(255),
            group: "g".repeat(249),
            topics: (0..u16::MAX as u32).map(name).collect(),
        };
        let mut b = Vec::new();
        body.encode(&mut b);
        assert_eq!(b.len(), 1 + 256 + 250 + 2 + 65_535 * 250);
        assert_eq!(parse_register(&b).unwrap(), body);
        let same = RegisterBody {
            topics: vec![name(7); u16::MAX as usize],
            ..body
        };
        let mut b = Vec::new();
        same.encode(&mut b);
        assert_eq!(parse_register(&b).unwrap().topics, vec![name(7)]);
    }

    #[test]
    fn poll_with_and_without_wait() {
        for wait in [None, Some(250)] {
            let p = PollBody {
                consumer_id: "abc".into(),
                max_wait_ms: wait,
            };
            let mut b = Vec::new();
            encode_poll(&p, &mut b);
            assert_eq!(parse_poll(&b).unwrap(), p);
        }
        assert_eq!(
            parse_poll(b"\x01x\x00\x00\x01\x00").unwrap().max_wait_ms,
            Some(256)
        );
        let p = PollBody {
            consumer_id: "abc".into(),
            max_wait_ms: Some(1),
        };
        let mut b = Vec::new();
        p.encode(&mut b);
        for n in 0..b.len() {
            // Cutting the wait off entirely leaves a valid body without one.
            match PollBody::decode(&b[..n]) {
                Ok(cut) => assert_eq!((n, cut.max_wait_ms), (4, None)),
                Err(e) => assert!(
                    matches!(e, WireError::Truncated(_) | WireError::Malformed(_)),
                    "{n}: {e}"
                ),
            }
        }
        assert!(parse_poll(b"\x01x\x00").is_err());
        assert!(parse_poll(b"").is_err());
        assert!(parse_poll(b"\x00").is_err());
    }

    #[test]
    fn consumer_id_bodies() {
        let mut b = Vec::new();
        encode_consumer_id("me", &mut b);
        assert_eq!(parse_consumer_id(&b, "COMMIT").unwrap(), "me");
        let body = ConsumerIdBody::decode(&b, "GOODBYE").unwrap();
        let mut again = Vec::new();
        body.encode(&mut again);
        assert_eq!(again, b);
        for n in 0..b.len() {
            assert!(matches!(
                ConsumerIdBody::decode(&b[..n], "COMMIT"),
                Err(WireError::Truncated(_))
            ));
        }
        b.push(1);
        assert!(parse_consumer_id(&b, "COMMIT")
            .unwrap_err()
            .to_string()
            .contains("COMMIT"));
    }
}
