//! Where a consumer group's offsets are reset to: the `to` query parameter of
//! `POST /v1/groups/{group}/reset` (`earliest`, `latest`, an offset, or `time:T`), shared by the
//! broker that parses it and the clients that send it.

use thiserror::Error;

use crate::time::{format_time_us, parse_time_us};

/// Where a reset moves a group's offsets in each partition of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The first offset still available.
    Earliest,
    /// The end: only records produced from now on are read.
    Latest,
    /// This offset (0 or more), moved into each partition's range.
    Offset(i64),
    /// In each partition, the first record whose timestamp (μs since the Unix epoch) is at or
    /// after this; the partition's end when every record is older.
    Time(i64),
}

/// A `to` that is none of the forms [`ResetTo`] has.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BadResetTo {
    #[error("{0:?} is not earliest, latest, an offset (0 or more) or time:T (RFC 3339 or Unix milliseconds)")]
    Form(String),
    #[error("{0}")]
    Time(#[from] crate::time::BadTime),
    #[error("offset {0} is negative")]
    Negative(i64),
}

impl ResetTo {
    /// Parses the `to` query parameter.
    pub fn parse(text: &str) -> Result<ResetTo, BadResetTo> {
        match text {
            "earliest" => Ok(ResetTo::Earliest),
            "latest" => Ok(ResetTo::Latest),
            t if t.starts_with("time:") => Ok(ResetTo::Time(parse_time_us(&t["time:".len()..])?)),
            n => match n.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(ResetTo::Offset(n)),
                _ => Err(BadResetTo::Form(n.to_string())),
            },
        }
    }

    /// The `to` query parameter [`parse`](Self::parse) reads back as `self` (a time to the
    /// microsecond, in UTC). A negative offset has no form.
    pub fn to_query(&self) -> Result<String, BadResetTo> {
        Ok(match *self {
            ResetTo::Earliest => "earliest".to_string(),
            ResetTo::Latest => "latest".to_string(),
            ResetTo::Offset(n) if n >= 0 => n.to_string(),
            ResetTo::Offset(n) => return Err(BadResetTo::Negative(n)),
            ResetTo::Time(us) => format!("time:{}", format_time_us(us)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_back() {
        for to in [
            ResetTo::Earliest,
            ResetTo::Latest,
            ResetTo::Offset(0),
            ResetTo::Offset(i64::MAX),
            ResetTo::Time(1_764_540_900_250_000),
        ] {
            assert_eq!(ResetTo::parse(&to.to_query().unwrap()), Ok(to));
        }
        assert_eq!(
            ResetTo::parse("time:1764540900000"),
            Ok(ResetTo::Time(1_764_540_900_000_000))
        );
    }

    #[test]
    fn bad_forms_are_refused() {
        for bad in [
            "",
            "-1",
            "first",
            "12x",
            "time:",
            "time:yesterday",
            "Earliest",
        ] {
            assert!(ResetTo::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ResetTo::Offset(-3).to_query(),
            Err(BadResetTo::Negative(-3))
        );
    }
}
