//! The e2e workload: produce (with timestamps) while consuming the same topic in one process.
//!
//! The consumers register first (a fresh group at `latest` by default, so no older backlog is
//! counted), then the producer runs as `produce` does with flag 0x01 set: every record carries
//! the send time of its frame (μs since the epoch). Each consumed record's end-to-end latency
//! is its poll response's arrival time minus that timestamp. When the producer has finished,
//! the consumers drain what is left (two empty polls in a row) and the run reports the
//! end-to-end latency percentiles as its own, with the producer's acknowledgement latency and
//! both rates beside them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::run::{Report, Settings, SetupError, Workload};
use crate::workload::consume::{self, ConsumeConfig};
use crate::workload::produce::{self, ProduceConfig};

/// A producer and its consumers on one topic.
#[derive(Debug, Clone)]
pub struct E2e {
    pub produce: ProduceConfig,
    pub consume: ConsumeConfig,
    /// Turns true when the producer has finished: the consumers then drain and stop.
    producer_done: Arc<AtomicBool>,
}

impl E2e {
    /// The producer stamps its frames; the consumers decode every record, record end-to-end
    /// latency, and stop once drained after the producer is done (not on their own
    /// `--messages`/`--duration`).
    pub fn new(mut produce: ProduceConfig, mut consume: ConsumeConfig) -> E2e {
        produce.timestamps = true;
        consume.e2e = true;
        consume.decode = true;
        consume.messages = None;
        consume.duration = None;
        let producer_done = Arc::new(AtomicBool::new(false));
        consume.producer_done = Some(producer_done.clone());
        E2e {
            produce,
            consume,
            producer_done,
        }
    }
}

impl Workload for E2e {
    const NAME: &'static str = "e2e";
    type Outcome = Report;

    fn validate(&self) -> Result<(), String> {
        self.produce.validate()?;
        self.consume.validate()
    }

    /// The producer's settings; the run adds the consumers' and both rates.
    fn settings(&self) -> Settings {
        self.produce.settings()
    }

    fn stop_on(&mut self, flag: &'static AtomicBool) {
        self.produce.stop_on(flag);
        self.consume.stop_on(flag);
    }

    /// Runs producer and consumers; the report's latency is end to end.
    fn run(self) -> Result<Report, SetupError> {
        self.validate()?;
        let E2e {
            produce,
            consume,
            producer_done: done,
        } = self;
        let (ready_tx, ready_rx) = mpsc::channel();
        let consumer = thread::Builder::new()
            .name("e2e-consume".into())
            .spawn(move || consume::run(consume, Some(ready_tx)))
            .map_err(|e| format!("cannot start the consumer thread: {e}"))?;
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            // The consumers could not register; their error says why.
            return match consumer.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(SetupError("the consumers did not register".into())),
            };
        }

        let produced = produce::run(produce);
        done.store(true, Ordering::SeqCst);
        let consumed = consumer
            .join()
            .map_err(|_| "the consumer thread panicked".to_string())?;
        let produced = produced?;
        let consumed = consumed?;

        let p = &produced.report;
        let c = &consumed.report;
        let mut settings = p.settings.clone();
        settings.insert("produce".into(), json!(p.measured));
        settings.insert("consume".into(), json!(c.settings));
        let pm = &p.measured;
        for (k, v) in [
            ("produce_msgs_per_sec", json!(pm.msgs_per_sec)),
            ("produce_mb_per_sec", json!(pm.mb_per_sec)),
            ("produce_acked", json!(pm.acked)),
            ("ack_p50_us", json!(pm.p50_us)),
            ("ack_p99_us", json!(pm.p99_us)),
            ("ack_p999_us", json!(pm.p999_us)),
            ("ack_max_us", json!(pm.max_us)),
            ("consume_msgs_per_sec", json!(c.measured.msgs_per_sec)),
            ("consume_mb_per_sec", json!(c.measured.mb_per_sec)),
            ("consumed", json!(c.measured.acked)),
            (
                "consumers",
                c.settings.get("consumers").cloned().unwrap_or_default(),
            ),
            (
                "group",
                c.settings.get("group").cloned().unwrap_or_default(),
            ),
        ] {
            settings.insert(k.into(), v);
        }
        let mut error_codes = p.error_codes.clone();
        for (k, v) in &c.error_codes {
            *error_codes.entry(k.clone()).or_default() += v;
        }
        Ok(Report {
            workload: Self::NAME.into(),
            measured: c.measured.clone(),
            settings,
            error_codes,
            failure: p.failure.clone().or_else(|| c.failure.clone()),
        })
    }
}
