//! The kinds of value the cluster and placement settings take: etcd endpoints, the cluster's
//! name, a broker id, an advertised `host:port`, and a CPU placement.

use super::kinds::{is_off, BadValue, Kind};

/// A comma-separated list of etcd endpoints (`http://host:port` or `host:port`); `off` or
/// nothing: no etcd, a single host.
pub struct Endpoints;

impl Kind for Endpoints {
    type Raw = String;
    type File = String;
    type Out = Vec<String>;
    fn parse(s: &String) -> Result<Vec<String>, BadValue> {
        if is_off(s) {
            return Ok(Vec::new());
        }
        s.split(',')
            .map(str::trim)
            .map(|e| {
                let rest = e
                    .strip_prefix("http://")
                    .or_else(|| e.strip_prefix("https://"))
                    .unwrap_or(e);
                host_port(rest)
                    .map(|_| e.to_string())
                    .ok_or_else(|| BadValue::NotEndpoint(e.to_string()))
            })
            .collect()
    }
}

/// `host:port` with a non-empty host (a name or an IP; IPv6 in brackets) and a port 1..=65535.
fn host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ok = !host.is_empty()
        && !host.contains('/')
        && !host.chars().any(char::is_whitespace)
        && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
    ok.then_some((host, port))
}

/// The cluster's name, the prefix of its keys in etcd: letters, digits, `.`, `_`, `-`.
pub struct ClusterName;

impl Kind for ClusterName {
    type Raw = String;
    type File = String;
    type Out = String;
    fn parse(s: &String) -> Result<String, BadValue> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(s.clone())
        } else {
            Err(BadValue::NotName(s.clone()))
        }
    }
}

/// A broker's id in its cluster, `0..=1000000`; `off` or nothing: not given.
pub struct BrokerId;

impl Kind for BrokerId {
    type Raw = String;
    type File = super::kinds::Scalar;
    type Out = Option<u32>;
    fn parse(s: &String) -> Result<Option<u32>, BadValue> {
        if s.trim().is_empty() || s.trim() == "none" {
            return Ok(None);
        }
        let v: u32 = s
            .trim()
            .parse()
            .map_err(|_| BadValue::NotInteger(s.clone()))?;
        if v > MAX_BROKER_ID {
            return Err(BadValue::OutOfRange {
                value: v.to_string(),
                unit: "",
                min: "0".into(),
                max: MAX_BROKER_ID.to_string(),
            });
        }
        Ok(Some(v))
    }
    fn range() -> Option<String> {
        Some(format!("0..={MAX_BROKER_ID}"))
    }
    const NUMBER: bool = true;
}

/// The largest broker id.
pub const MAX_BROKER_ID: u32 = 1_000_000;

/// A `host:port` other brokers and clients reach this broker at; nothing: not given.
pub struct HostPort;

impl Kind for HostPort {
    type Raw = String;
    type File = String;
    type Out = Option<String>;
    fn parse(s: &String) -> Result<Option<String>, BadValue> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(None);
        }
        match host_port(t) {
            Some(_) => Ok(Some(t.to_string())),
            None => Err(BadValue::NotHostPort(s.clone())),
        }
    }
}

/// Which CPUs the shards are pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuPlacement {
    /// Every CPU the process may run on, shard `i` on the `i`-th (the default).
    All,
    /// No pinning: the kernel places the shard threads (several brokers on one host).
    None,
    /// These CPUs, shard `i` on the `i`-th of them (in turn when there are more shards).
    List(Vec<usize>),
}

impl Kind for CpuPlacement {
    type Raw = String;
    type File = String;
    type Out = CpuPlacement;
    fn parse(s: &String) -> Result<CpuPlacement, BadValue> {
        match s.trim() {
            "all" => return Ok(CpuPlacement::All),
            "none" => return Ok(CpuPlacement::None),
            _ => {}
        }
        let bad = |why: &'static str| BadValue::NotCpuList {
            value: s.clone(),
            why,
        };
        let mut cpus = Vec::new();
        for part in s.split(',').map(str::trim) {
            let num = |t: &str| {
                t.trim()
                    .parse::<usize>()
                    .map_err(|_| bad("not a CPU number"))
            };
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            if lo > hi {
                return Err(bad("a range runs low-high"));
            }
            if hi >= MAX_CPU {
                return Err(bad("CPU numbers are below 4096"));
            }
            for c in lo..=hi {
                if cpus.contains(&c) {
                    return Err(bad("a CPU is listed twice"));
                }
                cpus.push(c);
            }
        }
        Ok(CpuPlacement::List(cpus))
    }
    fn range() -> Option<String> {
        Some("all, none, a list like 0,2,4-7".into())
    }
}

/// CPU numbers a list may name are below this.
const MAX_CPU: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoints::parse(&"off".into()).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(Endpoints::parse(&"".into()).unwrap(), Vec::<String>::new());
        assert_eq!(
            Endpoints::parse(&"http://127.0.0.1:2379, etcd-2:2379".into()).unwrap(),
            vec!["http://127.0.0.1:2379", "etcd-2:2379"]
        );
        for bad in [
            "localhost",
            "http://:2379",
            "a:0",
            "a:b",
            "a b:1",
            "http://x:1/path",
        ] {
            assert!(Endpoints::parse(&bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_ids_and_addresses() {
        assert!(ClusterName::parse(&"prod-eu.1_a".into()).is_ok());
        for bad in ["", "a/b", "a b", "ünï"] {
            assert!(ClusterName::parse(&bad.into()).is_err(), "{bad}");
        }
        assert_eq!(BrokerId::parse(&"".into()).unwrap(), None);
        assert_eq!(BrokerId::parse(&"0".into()).unwrap(), Some(0));
        assert_eq!(BrokerId::parse(&"42".into()).unwrap(), Some(42));
        assert!(BrokerId::parse(&"-1".into()).is_err());
        assert!(BrokerId::parse(&"2000000".into()).is_err());
        assert_eq!(
            HostPort::parse(&"broker-1.example:9254".into()).unwrap(),
            Some("broker-1.example:9254".into())
        );
        assert_eq!(
            HostPort::parse(&"[::1]:80".into()).unwrap(),
            Some("[::1]:80".into())
        );
        assert!(HostPort::parse(&"broker-1".into()).is_err());
        assert!(HostPort::parse(&"::1:80".into()).is_err());
    }

    #[test]
    fn cpu_placement() {
        let p = |s: &str| CpuPlacement::parse(&s.into());
        assert_eq!(p("all").unwrap(), CpuPlacement::All);
        assert_eq!(p("none").unwrap(), CpuPlacement::None);
        assert_eq!(p("3").unwrap(), CpuPlacement::List(vec![3]));
        assert_eq!(
            p("0,2,4-6").unwrap(),
            CpuPlacement::List(vec![0, 2, 4, 5, 6])
        );
        for bad in ["", "x", "3-1", "1,1", "0-5000", "1,,2"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
