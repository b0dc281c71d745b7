//! The read-back of a `--verify` run: a fresh group marks the end of every partition before
//! producing, then reads everything after the mark and feeds each record to a [`Checker`].

use std::collections::HashMap;
use std::time::Duration;

use shardlog_wire::consumer::StartPolicy;

use crate::client::poll::{for_each_record, Decoder};
use crate::client::session::{open_session, ConsumerSession, Transport};

use super::Checker;

/// Where and how to read a run back.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub transport: Transport,
    pub addr: String,
    pub topic: String,
    /// A group no one else uses.
    pub group: String,
    pub timeout: Duration,
}

impl ReadBack {
    const CONSUMER: &'static str = "perf-verify";

    /// Before producing: registers the group at the end of every partition (start policy
    /// `latest` commits those offsets at once), then leaves, so the read-back starts there.
    pub fn mark(&self) -> Result<(), String> {
        let mut s = self.session()?;
        s.register(
            Self::CONSUMER,
            &self.group,
            std::slice::from_ref(&self.topic),
            StartPolicy::Latest,
        )
        .map_err(|e| format!("verify: REGISTER failed: {e}"))?;
        s.goodbye(Self::CONSUMER)
            .map_err(|e| format!("verify: GOODBYE failed: {e}"))
    }

    fn session(&self) -> Result<Box<dyn ConsumerSession>, String> {
        open_session(self.transport, &self.addr, self.timeout)
            .map_err(|e| format!("verify: cannot connect to {}: {e}", self.addr))
    }

    /// After producing: reads everything after the mark (until two polls in a row bring
    /// nothing) and feeds every record to `checker`.
    pub fn read(&self, checker: &mut Checker<'_>) -> Result<(), String> {
        let mut s = self.session()?;
        s.register(
            Self::CONSUMER,
            &self.group,
            std::slice::from_ref(&self.topic),
            StartPolicy::Earliest,
        )
        .map_err(|e| format!("verify: REGISTER failed: {e}"))?;
        let mut decoder = Decoder::new();
        // The next offset expected per partition: records before it were delivered already.
        let mut next: HashMap<(i64, u8, String), i64> = HashMap::new();
        let mut empties = 0;
        while empties < 2 {
            let polled = s
                .poll(Self::CONSUMER, None)
                .map_err(|e| format!("verify: POLL failed: {e}"))?;
            if polled.body.len() <= 2 {
                empties += 1;
                continue;
            }
            empties = 0;
            for_each_record(&mut decoder, polled.body, |h, offset, _, body| {
                let p = (h.token, h.range_index, h.topic.to_string());
                let expect = next.entry(p).or_insert(offset);
                if offset < *expect {
                    return;
                }
                *expect = offset + 1;
                checker.record((h.token, h.range_index, h.topic), offset, body);
            })
            .map_err(|e| format!("verify: {e}"))?;
        }
        s.goodbye(Self::CONSUMER)
            .map_err(|e| format!("verify: GOODBYE failed: {e}"))
    }
}
