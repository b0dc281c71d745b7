//! The STARTUP body names the connection's topic: `topic len u8 | topic`. An empty body means
//! the topic `default`. Topic names become directory names, so they are restricted.

use super::reader::Reader;
use super::writer::Put;
use super::WireError;

/// The topic used when STARTUP carries an empty body, or gRPC metadata names none.
pub const DEFAULT_TOPIC: &str = "default";

/// A STARTUP body. Decoding validates the topic; an empty body decodes as [`DEFAULT_TOPIC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupBody<'a> {
    pub topic: &'a str,
}

impl<'a> StartupBody<'a> {
    pub fn decode(body: &'a [u8]) -> Result<StartupBody<'a>, WireError> {
        if body.is_empty() {
            return Ok(StartupBody {
                topic: DEFAULT_TOPIC,
            });
        }
        let mut r = Reader::new(body);
        let topic = r.bytes_u8("topic length runs past the STARTUP body")?;
        if !r.is_empty() {
            return Err(WireError::Malformed(format!(
                "STARTUP body has {} trailing bytes after the topic",
                r.remaining()
            )));
        }
        let topic = std::str::from_utf8(topic)
            .map_err(|_| WireError::InvalidTopic("not valid UTF-8".into()))?;
        validate_topic(topic)?;
        Ok(StartupBody { topic })
    }

    /// `topic len u8 | topic` (a topic is at most 249 bytes once valid; longer is cut at 255).
    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_str_u8(self.topic);
    }
}

/// Parses a STARTUP body into a validated topic name.
pub fn parse_startup(body: &[u8]) -> Result<String, WireError> {
    StartupBody::decode(body).map(|b| b.topic.to_string())
}

/// Encodes a STARTUP body for `topic`.
pub fn encode_startup(topic: &str, dst: &mut Vec<u8>) {
    StartupBody { topic }.encode(dst);
}

/// A topic name is 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..` (as in Kafka, and
/// safe as a directory name).
pub fn validate_topic(topic: &str) -> Result<(), WireError> {
    if topic.is_empty() {
        return Err(WireError::InvalidTopic("empty".into()));
    }
    if topic.len() > 249 {
        return Err(WireError::InvalidTopic(format!(
            "{} bytes long, the limit is 249",
            topic.len()
        )));
    }
    if topic == "." || topic == ".." {
        return Err(WireError::InvalidTopic(format!("'{topic}' is reserved")));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(WireError::InvalidTopic(format!(
            "'{}' contains {:?}; allowed are A-Z a-z 0-9 . _ -",
            topic.escape_debug(),
            c
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_is_default_topic() {
        assert_eq!(parse_startup(&[]).unwrap(), "default");
    }

    #[test]
    fn round_trip() {
        let mut b = Vec::new();
        encode_startup("orders.v1", &mut b);
        assert_eq!(b[0], 9);
        assert_eq!(parse_startup(&b).unwrap(), "orders.v1");
        let body = StartupBody::decode(&b).unwrap();
        assert_eq!(body, StartupBody { topic: "orders.v1" });
        let mut again = Vec::new();
        body.encode(&mut again);
        assert_eq!(again, b);
        // Every cut of the body but the empty one (the default topic) is an error, not a panic.
        for n in 1..b.len() {
            assert_eq!(
                StartupBody::decode(&b[..n]),
                Err(WireError::Truncated(
                    "topic length runs past the STARTUP body"
                ))
            );
        }
        let mut trailing = b.clone();
        trailing.push(b'x');
        assert!(matches!(
            StartupBody::decode(&trailing),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_bad_topics() {
        for bad in [
            &b"\x05abc"[..],
            b"\x03a/b",
            b"\x02..",
            b"\x00",
            b"\x02ab!",
            b"\x01\xff",
        ] {
            assert!(parse_startup(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic(&"x".repeat(250)).is_err());
        assert!(validate_topic("a_b-C.9").is_ok());
    }
}
