//! The optional JSON body of `POST /v1/consumer/commit`: explicit positions, named as the
//! poll's JSON items name partitions, each with the next offset to read there.
//!
//! ```json
//! {"positions": [{"topic": "orders", "token": "-9223372036854775808", "rangeIndex": 0,
//!                 "version": 1, "offset": "42"}]}
//! ```
//!
//! `token` and `offset` are strings (64-bit values), as in poll items; numbers are accepted too.

use serde::Deserialize;

use crate::wire::commit::CommitPosition;
use crate::wire::startup::validate_topic;
use crate::wire::WireError;

/// Why a commit body was refused (answered 400 with this sentence).
#[derive(Debug, thiserror::Error)]
pub enum CommitBodyError {
    #[error("commit body: {0}")]
    Json(#[from] serde_json::Error),
    #[error("commit body names {count} positions; the limit is {MAX_POSITIONS}")]
    TooMany { count: usize },
    #[error("commit body: {0}")]
    Topic(#[from] WireError),
    #[error("commit body: '{field}' {text:?} is not a 64-bit integer")]
    NotAnInteger { field: &'static str, text: String },
    #[error("commit body: offset {0} is negative")]
    NegativeOffset(i64),
}

/// Positions one commit may name (a consumer rarely owns more partitions than this).
pub const MAX_POSITIONS: usize = 65_535;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    positions: Vec<Position>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Position {
    topic: String,
    token: Int,
    range_index: u8,
    version: u32,
    offset: Int,
}

/// A 64-bit integer sent as a JSON string or number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int {
    Number(i64),
    Text(String),
}

impl Int {
    fn value(&self, field: &'static str) -> Result<i64, CommitBodyError> {
        match self {
            Int::Number(n) => Ok(*n),
            Int::Text(t) => t.parse().map_err(|_| CommitBodyError::NotAnInteger {
                field,
                text: t.clone(),
            }),
        }
    }
}

/// Parses the body: `Ok(None)` when it is empty (commit everything the last poll returned).
pub fn parse(body: &[u8]) -> Result<Option<Vec<CommitPosition>>, CommitBodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let b: Body = serde_json::from_slice(body)?;
    if b.positions.len() > MAX_POSITIONS {
        return Err(CommitBodyError::TooMany {
            count: b.positions.len(),
        });
    }
    let mut out = Vec::with_capacity(b.positions.len());
    for p in b.positions {
        validate_topic(&p.topic)?;
        let offset = p.offset.value("offset")?;
        if offset < 0 {
            return Err(CommitBodyError::NegativeOffset(offset));
        }
        out.push(CommitPosition {
            topic: p.topic,
            token: p.token.value("token")?,
            range_index: p.range_index,
            gen: p.version,
            offset,
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positions_and_refuses_bad_ones() {
        assert_eq!(parse(b"").unwrap(), None);
        assert_eq!(parse(b" \n").unwrap(), None);
        let ps = parse(
            br#"{"positions":[{"topic":"t","token":"-9223372036854775808","rangeIndex":2,"version":1,"offset":"42"},
                               {"topic":"u","token":5,"rangeIndex":0,"version":1,"offset":0}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(
            (ps[0].token, ps[0].range_index, ps[0].offset),
            (i64::MIN, 2, 42)
        );
        assert_eq!(ps[1].token, 5);
        for bad in [
            &br#"{"positions":[{"topic":"t","token":"x","rangeIndex":0,"version":1,"offset":1}]}"#
                [..],
            br#"{"positions":[{"topic":"t","token":1,"rangeIndex":0,"version":1,"offset":-1}]}"#,
            br#"{"positions":[{"topic":"a/b","token":1,"rangeIndex":0,"version":1,"offset":1}]}"#,
            br#"{"positions":[{"topic":"t","token":1,"rangeIndex":300,"version":1,"offset":1}]}"#,
            br#"{"positions":[{"topic":"t"}]}"#,
            br#"{"nope":[]}"#,
            b"not json",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
