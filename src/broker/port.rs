//! Before binding: waiting for a killed predecessor's listener to go, and naming a live
//! process that holds the port instead.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::StartError;

/// Waits until no socket listens on `addr`'s port, or says at once who holds it.
///
/// Every shard binds with `SO_REUSEPORT`; a restart right after a crash could otherwise share
/// the port with the dead process's listener (io_uring tears it down a moment after the
/// process exits), and connections landing there would never be answered. Such a leftover
/// belongs to no process; a listener that a live process holds is reported at once with its
/// pid. One whose owner cannot be seen (another user's process, `/proc` mounted with
/// `hidepid`) is waited for 10 s and then reported. (A plain test bind cannot tell these
/// apart: the dead process's connections in TIME_WAIT make it fail for a minute.)
pub(super) fn wait_for_port(addr: SocketAddr, flag: &'static str) -> Result<(), StartError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waited = false;
    loop {
        let inodes = listening_inodes(addr.port());
        if inodes.is_empty() {
            return Ok(());
        }
        if let Some(pid) = owner_of(&inodes) {
            return Err(StartError::PortHeld { addr, flag, pid });
        }
        if Instant::now() >= deadline {
            return Err(StartError::PortTaken { addr, flag });
        }
        if !waited {
            tracing::info!(%addr, "waiting for a listener no live process holds (a stopped broker's) to close");
            waited = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether any TCP socket on this host (IPv4 or IPv6) listens on `port`, from /proc/net.
#[cfg(test)]
fn listening_on(port: u16) -> bool {
    !listening_inodes(port).is_empty()
}

/// The socket inodes of the TCP listeners on `port` (IPv4 and IPv6), from /proc/net.
fn listening_inodes(port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(table) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in table.lines().skip(1) {
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == LISTEN && local_port == Some(port) {
                inodes.push(inode.parse().unwrap_or(0));
            }
        }
    }
    inodes
}

/// The pid of a live process with one of `inodes` among its open sockets, if one can be seen.
fn owner_of(inodes: &[u64]) -> Option<u32> {
    let wanted: Vec<String> = inodes
        .iter()
        .filter(|&&i| i != 0)
        .map(|i| format!("socket:[{i}]"))
        .collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listener_and_its_absence() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening_on(port));
        drop(l);
        assert!(!listening_on(port));
    }

    #[test]
    fn a_port_a_live_process_holds_is_reported_at_once_with_its_pid() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(
            owner_of(&listening_inodes(addr.port())),
            Some(std::process::id())
        );
        let err = wait_for_port(addr, "framed-listen").unwrap_err();
        assert!(
            matches!(err, StartError::PortHeld { pid, .. } if pid == std::process::id()),
            "{err:?}"
        );
        let line = err.to_string();
        let me = format!("process {} ", std::process::id());
        assert!(
            line.contains("--framed-listen") && line.contains(&me),
            "{line}"
        );
        drop(l);
        assert!(wait_for_port(addr, "framed-listen").is_ok());
    }
}
