//! Times as people and tools write them, for reading and resetting by time: an RFC 3339
//! timestamp (`2026-11-30T22:15:00Z`, `2026-11-30T23:15:00.250+01:00`) or a whole number of
//! milliseconds since the Unix epoch (`1764540900000`). Both become microseconds since the
//! epoch, the unit of record timestamps.

use std::time::UNIX_EPOCH;

use thiserror::Error;

/// A time that is neither RFC 3339 nor milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a time: expected RFC 3339 (e.g. 2026-11-30T22:15:00Z) or milliseconds since the Unix epoch")]
pub struct BadTime(pub String);

/// Parses an RFC 3339 timestamp (a `Z` or a `±HH:MM` offset; fractions of a second kept to the
/// microsecond) or milliseconds since the Unix epoch, into microseconds since the epoch.
pub fn parse_time_us(text: &str) -> Result<i64, BadTime> {
    let bad = || BadTime(text.to_string());
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .and_then(|ms| ms.checked_mul(1000))
            .ok_or_else(bad);
    }
    parse_rfc3339_us(s).ok_or_else(bad)
}

/// `us` (μs since the Unix epoch) as RFC 3339 in UTC with microseconds, e.g.
/// `2025-11-30T22:15:00.250000Z`: what clients send where a request takes a time. Times before
/// the epoch are sent as the epoch (no record the broker stamps is older).
pub fn format_time_us(us: i64) -> String {
    let since = std::time::Duration::from_micros(u64::try_from(us).unwrap_or(0));
    humantime::format_rfc3339_micros(UNIX_EPOCH + since).to_string()
}

/// RFC 3339 into μs since the epoch; `None` if it is not one (or is out of range).
fn parse_rfc3339_us(s: &str) -> Option<i64> {
    // humantime reads UTC (`Z`) only: an offset is taken off here and applied after.
    let (utc, offset_s) = split_offset(s)?;
    let t = humantime::parse_rfc3339(&utc).ok()?;
    let us = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_micros()).ok()?,
    };
    us.checked_sub(offset_s.checked_mul(1_000_000)?)
}

/// The timestamp with its offset replaced by `Z`, and the offset in seconds east of UTC.
fn split_offset(s: &str) -> Option<(String, i64)> {
    if let Some(utc) = s.strip_suffix(['Z', 'z']) {
        return Some((format!("{utc}Z"), 0));
    }
    let n = s.len();
    let tail = s.get(n.checked_sub(6)?..)?;
    let b = tail.as_bytes();
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if b[3] != b':' || ![1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let hours = i64::from(b[1] - b'0') * 10 + i64::from(b[2] - b'0');
    let minutes = i64::from(b[4] - b'0') * 10 + i64::from(b[5] - b'0');
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((
        format!("{}Z", &s[..n - 6]),
        sign * (hours * 3600 + minutes * 60),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_unix_milliseconds() {
        let t = 1_764_540_900_000_000; // 2025-11-30T22:15:00Z
        assert_eq!(parse_time_us("2025-11-30T22:15:00Z"), Ok(t));
        assert_eq!(parse_time_us("2025-11-30T22:15:00z"), Ok(t));
        assert_eq!(parse_time_us(" 2025-11-30T22:15:00Z "), Ok(t));
        assert_eq!(parse_time_us("2025-11-30T22:15:00.25Z"), Ok(t + 250_000));
        assert_eq!(parse_time_us("2025-11-30T22:15:00.000001Z"), Ok(t + 1));
        assert_eq!(parse_time_us("2025-11-30T23:45:00+01:30"), Ok(t));
        assert_eq!(
            parse_time_us("2025-11-30T20:15:00.5-02:00"),
            Ok(t + 500_000)
        );
        assert_eq!(parse_time_us("1764540900000"), Ok(t));
        assert_eq!(parse_time_us("0"), Ok(0));
        // Before the epoch only through an offset (the parser reads 1970 on).
        assert_eq!(
            parse_time_us("1970-01-01T00:30:00+01:00"),
            Ok(-1_800_000_000)
        );
    }

    #[test]
    fn formatted_times_parse_back() {
        for us in [0, 1, 1_764_540_900_250_001, 4_102_444_800_000_000] {
            assert_eq!(parse_time_us(&format_time_us(us)), Ok(us));
        }
        assert_eq!(
            format_time_us(1_764_540_900_250_000),
            "2025-11-30T22:15:00.250000Z"
        );
        assert_eq!(format_time_us(-5), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn everything_else_is_refused_with_the_text() {
        for bad in [
            "",
            " ",
            "yesterday",
            "-5",
            "1.5",
            "99999999999999999999",
            "9223372036854775807",
            "2025-11-30",
            "1969-12-31T23:59:59Z",
            "2025-11-30T22:15:00",
            "2025-13-30T22:15:00Z",
            "2025-11-30T22:15:00+1:00",
            "2025-11-30T22:15:00+24:00",
            "2025-11-30T22:15:00+01:60",
            "2025-11-30T22:15:00+01-00",
            "2025-11-30T22:15:00é1:00",
            "é",
        ] {
            let err = parse_time_us(bad).unwrap_err();
            assert_eq!(err, BadTime(bad.to_string()));
            assert!(err.to_string().contains("RFC 3339"), "{err}");
        }
    }
}
