//! Payloads that look like real data.
//!
//! Three kinds ([`PayloadKind`]), so a figure can be checked against payloads that compress
//! differently: `json` (the default), `text` (plain-text log lines), `random` (incompressible
//! bytes, where the disk rather than zstd may be the bound).
//!
//! `json`: like the OpenMessaging benchmark's payload files, each message is a JSON-like object: field
//! names, punctuation and some values are fixed text shared by every message, the other values
//! are random alphanumerics or hex (ids, tokens, hashes). `randomness` is the share of the
//! message's bytes that is random; the rest compresses across messages the way a real event
//! stream does. Messages are never all zeros, and every one is distinct (a `seq` field).
//!
//! Generation is seeded, so a run's payloads can be regenerated exactly from the seed (the
//! read-back verification compares against them). The generator is paid once, up front: the
//! workloads build a [`MessagePool`] and cycle through it.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How many distinct messages a workload prebuilds and cycles through by default.
pub const DEFAULT_POOL: usize = 1024;
/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 0x5eed_5a4d_0106;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
/// Fixed filler for fixed-text values and padding: the same bytes in every message.
const FILLER: &[u8] =
    b"the quick brown fox jumps over the lazy dog while the log keeps every record in order; ";
/// Messages shorter than this are not JSON (no room for the structure): random characters
/// followed by filler.
const MIN_JSON: usize = 48;

/// The shape of the generated messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PayloadKind {
    /// JSON-like events: fixed field names and values, random ids (`randomness` of the bytes).
    #[default]
    Json,
    /// Plain-text log lines: timestamp, level, service, a fixed message template, random ids
    /// (`randomness` of the bytes), one line after another up to the size.
    Text,
    /// Uniformly random bytes (never zero): incompressible; `randomness` is ignored.
    Random,
}

impl PayloadKind {
    pub fn name(self) -> &'static str {
        match self {
            PayloadKind::Json => "json",
            PayloadKind::Text => "text",
            PayloadKind::Random => "random",
        }
    }
}

/// What the generator makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PayloadSpec {
    /// Exact size of each message in bytes.
    pub size: usize,
    /// Share of random bytes, 0.0..=1.0 (clamped).
    pub randomness: f64,
    pub seed: u64,
    pub kind: PayloadKind,
}

impl Default for PayloadSpec {
    fn default() -> Self {
        PayloadSpec {
            size: 1024,
            randomness: 0.5,
            seed: DEFAULT_SEED,
            kind: PayloadKind::Json,
        }
    }
}

enum Value {
    /// Random characters from this alphabet, this many.
    Random(&'static [u8], usize),
    /// One of these fixed strings (chosen by the sequence number, so not random).
    Fixed(&'static [&'static str]),
}

/// The fields a message is built from, in order, cycled until the message is full.
const FIELDS: &[(&str, Value)] = &[
    ("event_id", Value::Random(HEX, 32)),
    (
        "type",
        Value::Fixed(&["page_view", "add_to_cart", "checkout", "search"]),
    ),
    ("user", Value::Random(ALNUM, 12)),
    (
        "country",
        Value::Fixed(&["DE", "FR", "US", "BR", "JP", "IN"]),
    ),
    ("session", Value::Random(ALNUM, 24)),
    (
        "device",
        Value::Fixed(&["android", "ios", "web-desktop", "web-mobile"]),
    ),
    ("trace_id", Value::Random(HEX, 16)),
    (
        "referrer",
        Value::Fixed(&[
            "https://example.com/",
            "https://search.example.org/q",
            "direct",
        ]),
    ),
    ("sku", Value::Random(ALNUM, 10)),
    ("status", Value::Fixed(&["ok", "pending", "retry"])),
    ("digest", Value::Random(HEX, 40)),
    ("currency", Value::Fixed(&["EUR", "USD", "BRL", "JPY"])),
];

/// Builds one message of exactly `spec.size` bytes; `seq` makes it distinct.
pub fn message(spec: &PayloadSpec, seq: u64, rng: &mut impl Rng) -> Vec<u8> {
    match spec.kind {
        PayloadKind::Json => json_message(spec, seq, rng),
        PayloadKind::Text => text_message(spec, seq, rng),
        PayloadKind::Random => random_message(spec.size, seq, rng),
    }
}

/// Random bytes 1..=255, with `seq` in the first 8 bytes (non-zero) so messages are distinct.
fn random_message(size: usize, seq: u64, rng: &mut impl Rng) -> Vec<u8> {
    let mut out: Vec<u8> = (0..size).map(|_| rng.gen_range(1..=255u8)).collect();
    for (i, b) in (seq | (1 << 63))
        .to_be_bytes()
        .iter()
        .enumerate()
        .take(size)
    {
        out[i] = b.saturating_add(1).max(1);
    }
    out
}

const LEVELS: &[&str] = &["INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"];
const SERVICES: &[&str] = &["api-gateway", "checkout", "inventory", "search", "auth"];
const TEMPLATES: &[&str] = &[
    "GET /api/v1/items 200 served from cache",
    "POST /api/v1/orders 201 order accepted",
    "connection pool at capacity, request queued",
    "user login succeeded via password",
    "retrying upstream call after timeout",
    "slow query on table events took longer than expected",
];

/// Plain-text log lines, newline-separated, cut to exactly `spec.size` bytes.
fn text_message(spec: &PayloadSpec, seq: u64, rng: &mut impl Rng) -> Vec<u8> {
    let size = spec.size;
    let randomness = spec.randomness.clamp(0.0, 1.0);
    let mut out = Vec::with_capacity(size + 160);
    let mut line = seq as usize;
    let mut random_used = 0usize;
    while out.len() < size {
        let ms = 1_000 + (seq * 7 + line as u64) % 59_000;
        out.extend_from_slice(
            format!(
                "2026-12-01T04:{:02}:{:02}.{:03}Z {} [{}] seq={seq} ",
                (ms / 60_000) % 60,
                (ms / 1000) % 60,
                ms % 1000,
                LEVELS[line % LEVELS.len()],
                SERVICES[line % SERVICES.len()],
            )
            .as_bytes(),
        );
        out.extend_from_slice(TEMPLATES[line % TEMPLATES.len()].as_bytes());
        // Ids while behind the random share: a request id, a user, a trace.
        for (name, alphabet, n) in [
            ("req", HEX, 16usize),
            ("user", ALNUM, 10),
            ("trace", HEX, 32),
        ] {
            if (random_used as f64) < randomness * (out.len() as f64 + 1.0) {
                out.extend_from_slice(format!(" {name}=").as_bytes());
                random_into(&mut out, alphabet, n, rng);
                random_used += n;
            }
        }
        out.push(b'\n');
        line += 1;
    }
    out.truncate(size);
    out
}

fn json_message(spec: &PayloadSpec, seq: u64, rng: &mut impl Rng) -> Vec<u8> {
    let size = spec.size;
    let randomness = spec.randomness.clamp(0.0, 1.0);
    let target_random = (size as f64 * randomness).round() as usize;
    let mut out = Vec::with_capacity(size);
    if size < MIN_JSON {
        random_into(&mut out, ALNUM, target_random.min(size), rng);
        let rest = size - out.len();
        filler_into(&mut out, rest, 0);
        return out;
    }
    out.extend_from_slice(format!("{{\"seq\":{seq}").as_bytes());
    let mut random_used = 0usize;
    // The closing `,"pad":"` + `"}` always follows.
    const PAD_OVERHEAD: usize = 10;
    let mut i = (seq as usize) % FIELDS.len();
    let mut skipped = 0;
    while skipped < FIELDS.len() {
        let (name, value) = &FIELDS[i % FIELDS.len()];
        i += 1;
        // Keep the random share on track: random fields while behind, fixed ones while ahead.
        let behind = (random_used as f64) < randomness * (out.len() as f64 + 1.0);
        let wanted = match value {
            Value::Random(..) => behind,
            Value::Fixed(_) => !behind,
        };
        let len = match value {
            Value::Random(_, n) => *n,
            Value::Fixed(choices) => choices[seq as usize % choices.len()].len(),
        };
        let cost = 6 + name.len() + len; // ,"name":"value"
        if !wanted || out.len() + cost + PAD_OVERHEAD > size {
            skipped += 1;
            continue;
        }
        skipped = 0;
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":\"");
        match value {
            Value::Random(alphabet, n) => {
                random_into(&mut out, alphabet, *n, rng);
                random_used += n;
            }
            Value::Fixed(choices) => {
                out.extend_from_slice(choices[seq as usize % choices.len()].as_bytes())
            }
        }
        out.push(b'"');
    }
    out.extend_from_slice(b",\"pad\":\"");
    let pad = size - out.len() - 2;
    let random = target_random.saturating_sub(random_used).min(pad);
    random_into(&mut out, ALNUM, random, rng);
    filler_into(&mut out, pad - random, seq as usize);
    out.extend_from_slice(b"\"}");
    debug_assert_eq!(out.len(), size);
    out
}

fn random_into(out: &mut Vec<u8>, alphabet: &[u8], n: usize, rng: &mut impl Rng) {
    out.extend((0..n).map(|_| alphabet[rng.gen_range(0..alphabet.len())]));
}

fn filler_into(out: &mut Vec<u8>, n: usize, offset: usize) {
    out.extend(FILLER.iter().cycle().skip(offset % FILLER.len()).take(n));
}

/// A set of distinct prebuilt messages, generated once from a seed and cycled.
#[derive(Debug, Clone)]
pub struct MessagePool {
    pub spec: PayloadSpec,
    messages: Vec<Vec<u8>>,
}

impl MessagePool {
    /// Generates `count` (at least 1) messages.
    pub fn generate(spec: PayloadSpec, count: usize) -> MessagePool {
        let mut rng = SmallRng::seed_from_u64(spec.seed);
        let messages = (0..count.max(1) as u64)
            .map(|seq| message(&spec, seq, &mut rng))
            .collect();
        MessagePool { spec, messages }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Message `i`, cycling.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.messages[i % self.messages.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share of bytes that differ between two seeds (random bytes collide by chance with
    /// probability 1/16 for hex and 1/62 for alphanumerics, so this slightly underestimates).
    fn random_share(spec: PayloadSpec) -> f64 {
        let a = MessagePool::generate(spec, 64);
        let b = MessagePool::generate(PayloadSpec { seed: 99, ..spec }, 64);
        let differing: usize = (0..64)
            .map(|i| {
                a.get(i)
                    .iter()
                    .zip(b.get(i))
                    .filter(|(x, y)| x != y)
                    .count()
            })
            .sum();
        differing as f64 / (64 * spec.size) as f64
    }

    #[test]
    fn default_messages_are_exact_size_distinct_json() {
        let pool = MessagePool::generate(PayloadSpec::default(), DEFAULT_POOL);
        assert_eq!(pool.len(), DEFAULT_POOL);
        let mut seen = std::collections::HashSet::new();
        for i in 0..pool.len() {
            let m = pool.get(i);
            assert_eq!(m.len(), 1024);
            assert!(m.iter().all(|&b| b != 0), "message {i} has zero bytes");
            let v: serde_json::Value = serde_json::from_slice(m)
                .unwrap_or_else(|e| panic!("message {i} is not JSON: {e}"));
            assert_eq!(v["seq"], i as u64);
            assert!(seen.insert(m.to_vec()), "message {i} repeats");
        }
        let share = random_share(PayloadSpec::default());
        assert!((0.45..=0.52).contains(&share), "random share {share:.3}");
    }

    #[test]
    fn sizes_are_exact_for_any_size_and_randomness() {
        for size in [1, 7, 47, 48, 49, 64, 100, 333, 1000, 1024, 4096, 65536] {
            for r in [0.0, 0.1, 0.5, 0.9, 1.0] {
                let spec = PayloadSpec {
                    size,
                    randomness: r,
                    seed: 1,
                    kind: PayloadKind::Json,
                };
                let pool = MessagePool::generate(spec, 8);
                for i in 0..8 {
                    assert_eq!(pool.get(i).len(), size, "size {size} randomness {r}");
                    assert!(pool.get(i).iter().all(|&b| b != 0));
                }
            }
        }
    }

    #[test]
    fn same_seed_same_messages() {
        let a = MessagePool::generate(PayloadSpec::default(), 16);
        let b = MessagePool::generate(PayloadSpec::default(), 16);
        for i in 0..16 {
            assert_eq!(a.get(i), b.get(i));
        }
    }

    /// What a frame of 64 default messages compresses to with zstd level 1.
    fn ratio(spec: PayloadSpec) -> f64 {
        let pool = MessagePool::generate(spec, 64);
        let data: Vec<u8> = (0..64).flat_map(|i| pool.get(i).to_vec()).collect();
        let compressed = zstd::bulk::compress(&data, 1).unwrap();
        data.len() as f64 / compressed.len() as f64
    }

    #[test]
    fn default_payload_compresses_like_real_data() {
        let r = ratio(PayloadSpec::default());
        assert!((1.5..=4.0).contains(&r), "zstd level 1 ratio {r:.2}");
    }

    #[test]
    fn every_kind_makes_exact_sizes_distinct_messages_without_zeros() {
        for kind in [PayloadKind::Json, PayloadKind::Text, PayloadKind::Random] {
            for size in [1, 9, 100, 1024, 5000] {
                let spec = PayloadSpec {
                    size,
                    kind,
                    ..PayloadSpec::default()
                };
                let pool = MessagePool::generate(spec, 64);
                let mut seen = std::collections::HashSet::new();
                for i in 0..64 {
                    let m = pool.get(i);
                    assert_eq!(m.len(), size, "{kind:?} size {size}");
                    assert!(m.iter().all(|&b| b != 0), "{kind:?} has zero bytes");
                    if size >= 100 {
                        assert!(seen.insert(m.to_vec()), "{kind:?} message {i} repeats");
                    }
                }
            }
        }
    }

    #[test]
    fn kinds_compress_differently() {
        let at = |kind| {
            ratio(PayloadSpec {
                kind,
                ..PayloadSpec::default()
            })
        };
        let (json, text, random) = (
            at(PayloadKind::Json),
            at(PayloadKind::Text),
            at(PayloadKind::Random),
        );
        eprintln!("zstd-1 ratios json {json:.2} text {text:.2} random {random:.2}");
        assert!(random < 1.01, "random bytes must not compress: {random:.3}");
        assert!(text > 1.5 && json > 1.5, "json {json:.2} text {text:.2}");
        let lines = MessagePool::generate(
            PayloadSpec {
                kind: PayloadKind::Text,
                ..PayloadSpec::default()
            },
            1,
        );
        let first = std::str::from_utf8(lines.get(0)).expect("text is UTF-8");
        assert!(first.starts_with("2026-12-01T04:"), "{first}");
        assert!(first.contains(" [") && first.contains('\n'), "{first}");
    }

    #[test]
    fn randomness_controls_compressibility() {
        let at = |randomness| {
            ratio(PayloadSpec {
                randomness,
                ..PayloadSpec::default()
            })
        };
        let (low, mid, high) = (at(0.1), at(0.5), at(0.95));
        assert!(low > mid && mid > high, "{low:.2} {mid:.2} {high:.2}");
        eprintln!("zstd-1 ratios at 0.1, 0.5, 0.95: {low:.2} {mid:.2} {high:.2}");
        assert!(high < 2.5, "95% random should barely compress: {high:.2}");
        assert!(low > 5.0, "10% random should compress well: {low:.2}");
    }
}
