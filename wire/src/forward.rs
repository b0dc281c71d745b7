//! Frames one broker forwards to another (cluster mode). Ordinary clients never send these:
//! their bytes are the seed's, unchanged.
//!
//! - A **forwarding connection** says so once, in its STARTUP body: the topic as usual, then
//!   the option `0x01 | broker id u32` (the forwarding broker). A broker never forwards a
//!   frame that arrived on such a connection again. A broker's connection for consumer-group
//!   operations (`wire::group`) names no topic: its STARTUP is `0x00 | 0x01 | broker id u32`
//!   (an empty topic, which only a broker's STARTUP may have), decoded as the topic `""`.
//! - On that connection every **PRODUCE body** starts with a head, `partition u32 | leader
//!   epoch u64`, naming the partition the forwarding broker routed the frame to and the
//!   leader epoch it routed it at; the ordinary PRODUCE body follows. The receiving broker
//!   stores the frame only if it leads that partition at that epoch.

use super::reader::Reader;
use super::startup::StartupBody;
use super::writer::Put;
use super::WireError;

/// The STARTUP option tag that marks a forwarding connection.
pub const FORWARDED_BY: u8 = 0x01;

/// Bytes of the head a forwarded PRODUCE body starts with.
pub const HEAD_LEN: usize = 12;

/// A STARTUP body: an ordinary client's, or a forwarding broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Startup<'a> {
    /// The connection's topic; `""` only on a broker's connection for group operations.
    pub topic: &'a str,
    /// The forwarding broker's id, on a broker-to-broker connection.
    pub forwarded_by: Option<u32>,
}

impl<'a> Startup<'a> {
    /// Decodes either kind (an ordinary body exactly as [`StartupBody::decode`] does).
    pub fn decode(body: &'a [u8]) -> Result<Startup<'a>, WireError> {
        let topic_end = body.first().map_or(0, |&len| 1 + len as usize);
        if body.len() == topic_end + 5 && body[topic_end] == FORWARDED_BY {
            if topic_end == 1 {
                // A broker's connection without a topic (group operations only).
                let mut r = Reader::new(&body[2..]);
                let from = r.u32("forwarding broker id")?;
                return Ok(Startup {
                    topic: "",
                    forwarded_by: Some(from),
                });
            }
            let plain = StartupBody::decode(&body[..topic_end])?;
            let mut r = Reader::new(&body[topic_end + 1..]);
            let from = r.u32("forwarding broker id")?;
            return Ok(Startup {
                topic: plain.topic,
                forwarded_by: Some(from),
            });
        }
        let plain = StartupBody::decode(body)?;
        Ok(Startup {
            topic: plain.topic,
            forwarded_by: None,
        })
    }

    /// `topic len u8 | topic`, then `0x01 | broker id u32` on a forwarding connection.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        StartupBody { topic: self.topic }.encode(dst);
        if let Some(from) = self.forwarded_by {
            dst.put_u8(FORWARDED_BY);
            dst.put_u32(from);
        }
    }
}

/// The head of a forwarded PRODUCE body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedHead {
    pub partition: u32,
    pub leader_epoch: u64,
}

impl ForwardedHead {
    pub fn encode(&self) -> [u8; HEAD_LEN] {
        let mut out = [0u8; HEAD_LEN];
        out[..4].copy_from_slice(&self.partition.to_be_bytes());
        out[4..].copy_from_slice(&self.leader_epoch.to_be_bytes());
        out
    }

    /// The head of `body` and where the ordinary PRODUCE body starts.
    pub fn decode(body: &[u8]) -> Result<(ForwardedHead, usize), WireError> {
        let mut r = Reader::new(body);
        let partition = r.u32("forwarded PRODUCE head (partition)")?;
        let epoch = r.array::<8>("forwarded PRODUCE head (leader epoch)")?;
        Ok((
            ForwardedHead {
                partition,
                leader_epoch: u64::from_be_bytes(epoch),
            },
            HEAD_LEN,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarding_startup_round_trips_and_an_ordinary_one_is_unchanged() {
        let mut plain = Vec::new();
        Startup {
            topic: "t",
            forwarded_by: None,
        }
        .encode(&mut plain);
        assert_eq!(plain, [1, b't'], "the seed's bytes");
        assert_eq!(Startup::decode(&plain).unwrap().forwarded_by, None);
        assert_eq!(Startup::decode(&[]).unwrap().topic, "default");
        let mut fwd = Vec::new();
        let s = Startup {
            topic: "orders",
            forwarded_by: Some(3),
        };
        s.encode(&mut fwd);
        assert_eq!(&fwd[7..], [FORWARDED_BY, 0, 0, 0, 3]);
        assert_eq!(Startup::decode(&fwd).unwrap(), s);
        // A broker's connection for group operations names no topic; a client's may not.
        let mut control = Vec::new();
        let s = Startup {
            topic: "",
            forwarded_by: Some(2),
        };
        s.encode(&mut control);
        assert_eq!(control, [0, FORWARDED_BY, 0, 0, 0, 2]);
        assert_eq!(Startup::decode(&control).unwrap(), s);
        assert!(Startup::decode(&[0]).is_err());
        // Anything else after the topic is still an error, never a panic.
        for bad in [&[1, b't', 2, 0, 0, 0, 3][..], &[1, b't', 1, 0, 0], &[9]] {
            assert!(Startup::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_forwarded_head_round_trips_and_a_short_one_is_an_error() {
        let head = ForwardedHead {
            partition: 7,
            leader_epoch: 1 << 40,
        };
        let mut body = head.encode().to_vec();
        body.extend_from_slice(b"\x00\x00\x00\x00\x01x");
        assert_eq!(ForwardedHead::decode(&body).unwrap(), (head, HEAD_LEN));
        for n in 0..HEAD_LEN {
            assert!(ForwardedHead::decode(&body[..n]).is_err());
        }
    }
}
