//! The kinds of value a setting takes: how its text (from a flag, the environment, the file or
//! its default) is parsed and checked, what range `--help` and the docs show, and how the
//! example file writes it.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::ValueParser;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use thiserror::Error;

use super::Durability;

/// Why a setting's value is refused (the caller names the flag).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BadValue {
    #[error("must not be empty")]
    Empty,
    #[error("'{0}' is not an IP:port address (e.g. 127.0.0.1:9254)")]
    NotAddr(String),
    #[error("'{0}' is not one of: fsync, write")]
    NotDurability(String),
    #[error("'{0}' is not true or false")]
    NotBool(String),
    #[error("'{0}' is not an integer")]
    NotInteger(String),
    #[error("{value}{unit} is out of range {min}..={max}")]
    OutOfRange {
        value: String,
        unit: &'static str,
        min: String,
        max: String,
    },
    #[error("'{0}' is not a size (e.g. 4096, 64KiB, 1GiB)")]
    NotSize(String),
    #[error("unknown size unit '{unit}' in '{value}' (use B, KiB, MiB, GiB, TiB)")]
    SizeUnit { unit: String, value: String },
    #[error("'{0}' is out of range")]
    SizeOverflow(String),
    #[error("must be a positive duration")]
    NotPositive,
    #[error("'{value}' is not a duration (e.g. 7d, 12h, 30m): {reason}")]
    NotDuration { value: String, reason: String },
    #[error("{value:?} is too long: at most {max:?} ({why})")]
    TooLong {
        value: Duration,
        max: Duration,
        why: &'static str,
    },
    #[error("'{0}' is not an etcd endpoint (e.g. http://127.0.0.1:2379)")]
    NotEndpoint(String),
    #[error("'{0}' is not a host:port (e.g. broker-1.example:9254)")]
    NotHostPort(String),
    #[error("'{0}' is not a name of 1 to 64 letters, digits, '.', '_', '-'")]
    NotName(String),
    #[error("'{value}' is not all, none or a CPU list like 0,2,4-7: {why}")]
    NotCpuList { value: String, why: &'static str },
    #[error("is required with --{0}")]
    RequiredWith(&'static str),
    #[error("is required with --{with} when --{listen} is {addr} (a wildcard address others cannot reach)")]
    AdvertiseRequired {
        with: &'static str,
        listen: &'static str,
        addr: SocketAddr,
    },
    #[error("{value:?} is too short: at least {min:?} ({why})")]
    TooShort {
        value: Duration,
        min: Duration,
        why: &'static str,
    },
    #[error("{value} is above --{other} ({other_value})")]
    Above {
        value: i64,
        other: &'static str,
        other_value: i64,
    },
    #[error("the value does not fit")]
    DoesNotFit,
    #[error("{0} is also the --{1} address")]
    SameAddress(SocketAddr, &'static str),
    #[error("{value} bytes is smaller than --{other} ({other_value})")]
    SmallerThan {
        value: u64,
        other: &'static str,
        other_value: u64,
    },
}

/// What flags and the environment give for a setting, before it is parsed.
pub trait Raw: Clone + Send + Sync + 'static + From<String> {
    fn value_parser() -> ValueParser;
}

impl Raw for String {
    fn value_parser() -> ValueParser {
        clap::value_parser!(String)
    }
}

impl Raw for PathBuf {
    fn value_parser() -> ValueParser {
        clap::value_parser!(PathBuf)
    }
}

/// A TOML number, given as an integer or as a string with units.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Str(String),
}

impl From<Scalar> for String {
    fn from(s: Scalar) -> String {
        match s {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s,
        }
    }
}

/// A kind of setting.
pub trait Kind {
    /// As flags and the environment give it.
    type Raw: Raw;
    /// As the TOML file gives it.
    type File: DeserializeOwned + Into<Self::Raw>;
    type Out;
    /// The value, or why not (the caller prefixes the flag).
    fn parse(raw: &Self::Raw) -> Result<Self::Out, BadValue>;
    /// The accepted range, for `--help` and the docs.
    fn range() -> Option<String> {
        None
    }
    /// Written as a bare TOML integer (rather than a string) in the example file.
    const NUMBER: bool = false;
    /// Values may start with `-` (negative numbers).
    const NEGATIVE: bool = false;
}

/// `0`, `off`, `none` or nothing: the value that turns an optional setting off.
pub fn is_off(s: &str) -> bool {
    matches!(s.trim(), "0" | "off" | "none" | "")
}

/// A directory or file path; not empty.
pub struct Path;

impl Kind for Path {
    type Raw = PathBuf;
    type File = PathBuf;
    type Out = PathBuf;
    fn parse(raw: &PathBuf) -> Result<PathBuf, BadValue> {
        if raw.as_os_str().is_empty() {
            return Err(BadValue::Empty);
        }
        Ok(raw.clone())
    }
}

/// Any text.
pub struct Text;

impl Kind for Text {
    type Raw = String;
    type File = String;
    type Out = String;
    fn parse(raw: &String) -> Result<String, BadValue> {
        Ok(raw.clone())
    }
}

/// An `IP:port` address.
pub struct Addr;

impl Kind for Addr {
    type Raw = String;
    type File = String;
    type Out = SocketAddr;
    fn parse(s: &String) -> Result<SocketAddr, BadValue> {
        s.parse().map_err(|_| BadValue::NotAddr(s.clone()))
    }
}

impl Kind for Durability {
    type Raw = String;
    type File = String;
    type Out = Durability;
    fn parse(s: &String) -> Result<Durability, BadValue> {
        match s.as_str() {
            "fsync" => Ok(Durability::Fsync),
            "write" => Ok(Durability::Write),
            other => Err(BadValue::NotDurability(other.to_string())),
        }
    }
    fn range() -> Option<String> {
        Some("fsync, write".into())
    }
}

/// A TOML switch, given as a boolean or as a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Switch {
    Bool(bool),
    Str(String),
}

impl From<Switch> for String {
    fn from(s: Switch) -> String {
        match s {
            Switch::Bool(b) => b.to_string(),
            Switch::Str(s) => s,
        }
    }
}

/// `true` or `false`.
pub struct Bool;

impl Kind for Bool {
    type Raw = String;
    type File = Switch;
    type Out = bool;
    fn parse(s: &String) -> Result<bool, BadValue> {
        match s.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(BadValue::NotBool(s.clone())),
        }
    }
    fn range() -> Option<String> {
        Some("true, false".into())
    }
    /// Written bare: `true` is a TOML boolean.
    const NUMBER: bool = true;
}

/// An integer in `MIN..=MAX`.
pub struct Int<const MIN: i64, const MAX: i64>;

impl<const MIN: i64, const MAX: i64> Kind for Int<MIN, MAX> {
    type Raw = String;
    type File = Scalar;
    type Out = i64;
    fn parse(s: &String) -> Result<i64, BadValue> {
        let v: i64 = s
            .trim()
            .parse()
            .map_err(|_| BadValue::NotInteger(s.clone()))?;
        if v < MIN || v > MAX {
            return Err(BadValue::OutOfRange {
                value: v.to_string(),
                unit: "",
                min: MIN.to_string(),
                max: MAX.to_string(),
            });
        }
        Ok(v)
    }
    fn range() -> Option<String> {
        Some(format!("{MIN}..={MAX}"))
    }
    const NUMBER: bool = true;
    const NEGATIVE: bool = MIN < 0;
}

/// A size in bytes in `MIN..=MAX`, with units (see [`parse_size`]).
pub struct Size<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Kind for Size<MIN, MAX> {
    type Raw = String;
    type File = Scalar;
    type Out = u64;
    fn parse(s: &String) -> Result<u64, BadValue> {
        let v = parse_size(s)?;
        if v < MIN || v > MAX {
            return Err(BadValue::OutOfRange {
                value: v.to_string(),
                unit: " bytes",
                min: MIN.to_string(),
                max: MAX.to_string(),
            });
        }
        Ok(v)
    }
    fn range() -> Option<String> {
        match (MIN, MAX) {
            (0, u64::MAX) => None,
            (0, max) => Some(format!("up to {}", show_size(max))),
            (min, u64::MAX) => Some(format!("{} or more", show_size(min))),
            (min, max) => Some(format!("{}..={}", show_size(min), show_size(max))),
        }
    }
}

/// A positive duration (humantime: `30s`, `10m`, `12h`, `7d`, `200us`); `0` or `off` is
/// refused.
pub struct Dur;

impl Kind for Dur {
    type Raw = String;
    type File = Scalar;
    type Out = Duration;
    fn parse(s: &String) -> Result<Duration, BadValue> {
        if is_off(s) {
            return Err(BadValue::NotPositive);
        }
        humantime::parse_duration(s.trim()).map_err(|e| BadValue::NotDuration {
            value: s.clone(),
            reason: e.to_string(),
        })
    }
}

/// `K`, or `None` when given as `0` or `off`.
pub struct Opt<K>(PhantomData<K>);

impl<K: Kind<Raw = String>> Kind for Opt<K> {
    type Raw = String;
    type File = K::File;
    type Out = Option<K::Out>;
    fn parse(s: &String) -> Result<Option<K::Out>, BadValue> {
        if is_off(s) {
            return Ok(None);
        }
        K::parse(s).map(Some)
    }
    fn range() -> Option<String> {
        K::range()
    }
    const NUMBER: bool = K::NUMBER;
    const NEGATIVE: bool = K::NEGATIVE;
}

/// `K`, or zero when given as `0` or `off`.
pub struct OffIsZero<K>(PhantomData<K>);

impl<K: Kind<Raw = String, Out: Default>> Kind for OffIsZero<K> {
    type Raw = String;
    type File = K::File;
    type Out = K::Out;
    fn parse(s: &String) -> Result<K::Out, BadValue> {
        if is_off(s) {
            return Ok(K::Out::default());
        }
        K::parse(s)
    }
    fn range() -> Option<String> {
        K::range()
    }
    const NUMBER: bool = K::NUMBER;
    const NEGATIVE: bool = K::NEGATIVE;
}

/// Parses `1024`, `64KiB`, `64KB`, `1.5GiB`, `10M` (binary units; `K`, `KB` and `KiB` all mean
/// 1024).
pub fn parse_size(s: &str) -> Result<u64, BadValue> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| BadValue::NotSize(s.to_string()))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(BadValue::SizeUnit {
                unit: other.to_string(),
                value: s.to_string(),
            })
        }
    };
    let v = num * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(BadValue::SizeOverflow(s.to_string()));
    }
    Ok(v as u64)
}

/// `65536` as `64KiB`: the largest binary unit that divides it.
fn show_size(v: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if v != 0 && v.is_multiple_of(1 << shift) {
            return format!("{}{unit}", v >> shift);
        }
    }
    format!("{v}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_show_in_units() {
        assert_eq!(show_size(64 << 10), "64KiB");
        assert_eq!(show_size(1 << 40), "1TiB");
        assert_eq!(show_size(3 << 29), "1536MiB");
        assert_eq!(show_size(1000), "1000B");
        for v in [1 << 10, 5 << 20, 1 << 40, 1536 << 20] {
            assert_eq!(parse_size(&show_size(v)).unwrap(), v);
        }
        assert_eq!(
            Size::<{ 64 << 10 }, { 1 << 40 }>::range().unwrap(),
            "64KiB..=1TiB"
        );
        assert_eq!(Size::<0, { u64::MAX }>::range(), None);
        assert_eq!(Int::<{ -7 }, 22>::range().unwrap(), "-7..=22");
    }

    #[test]
    fn off_means_none_or_zero_only_where_declared() {
        type Bytes = Size<{ 1 << 20 }, { u64::MAX }>;
        for off in ["0", "off", "none", "", " off "] {
            assert_eq!(Opt::<Bytes>::parse(&off.into()).unwrap(), None);
            assert_eq!(
                OffIsZero::<Dur>::parse(&off.into()).unwrap(),
                Duration::ZERO
            );
            assert!(Dur::parse(&off.into()).is_err());
        }
        assert!(Bytes::parse(&"off".into()).is_err());
        assert_eq!(Opt::<Bytes>::parse(&"1GiB".into()).unwrap(), Some(1 << 30));
    }
}
