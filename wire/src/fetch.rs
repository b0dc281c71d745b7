//! The FETCH body: read one partition from an offset, without a consumer group. Answered with
//! a POLL_RESPONSE (the same items as a poll: the stored chunks, the first of which may start
//! before the offset), or an ERROR.
//!
//! ```text
//! topic len u8 | topic | partition u32 | offset i64 | max bytes u32 | [max wait ms u32]
//! ```
//!
//! `partition` is the index `0..P` in the topic's layout (partition `j` covers the `j`-th
//! token range; see `ring`). `max bytes` bounds the response's payloads (the broker also caps
//! it at its `--max-poll-bytes`; at least one chunk is sent if there is any). With a max wait,
//! a fetch at the end of the partition waits up to that long for new records.

use super::reader::Reader;
use super::startup::validate_topic;
use super::writer::Put;
use super::WireError;

/// A parsed FETCH body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchBody {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub max_bytes: u32,
    pub max_wait_ms: Option<u32>,
}

impl FetchBody {
    pub fn decode(body: &[u8]) -> Result<FetchBody, WireError> {
        let mut r = Reader::new(body);
        let topic = r.string("topic")?;
        validate_topic(&topic)?;
        let partition = r.u32("partition")?;
        let offset = r.i64("offset")?;
        if offset < 0 {
            return Err(WireError::Malformed(format!(
                "FETCH offset {offset} is negative"
            )));
        }
        let max_bytes = r.u32("max bytes")?;
        let max_wait_ms = match r.remaining() {
            0 => None,
            4 => Some(r.u32("max wait")?),
            n => {
                return Err(WireError::Malformed(format!(
                    "FETCH body has {n} bytes after max bytes; expected none or a 4-byte max wait"
                )))
            }
        };
        Ok(FetchBody {
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
        })
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_str_u8(&self.topic);
        dst.put_u32(self.partition);
        dst.put_i64(self.offset);
        dst.put_u32(self.max_bytes);
        if let Some(ms) = self.max_wait_ms {
            dst.put_u32(ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_bodies() {
        for wait in [None, Some(250)] {
            let b = FetchBody {
                topic: "orders".into(),
                partition: 3,
                offset: 1_000_000,
                max_bytes: 1 << 20,
                max_wait_ms: wait,
            };
            let mut buf = Vec::new();
            b.encode(&mut buf);
            assert_eq!(FetchBody::decode(&buf).unwrap(), b);
            // Every strict prefix is refused, never a panic.
            for n in 0..buf.len() {
                if wait.is_some() && n == buf.len() - 4 {
                    continue; // without the optional max wait: a valid body
                }
                assert!(FetchBody::decode(&buf[..n]).is_err(), "prefix {n}");
            }
        }
        let mut bad = Vec::new();
        FetchBody {
            topic: "a/b".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1,
            max_wait_ms: None,
        }
        .encode(&mut bad);
        assert!(FetchBody::decode(&bad).is_err());
        let mut neg = Vec::new();
        FetchBody {
            topic: "t".into(),
            partition: 0,
            offset: -1,
            max_bytes: 1,
            max_wait_ms: None,
        }
        .encode(&mut neg);
        assert!(FetchBody::decode(&neg).is_err());
    }
}
