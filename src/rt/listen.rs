//! Listening sockets made here rather than by the runtime's `bind`, which sets only
//! `SO_REUSEPORT`: every shard binds the same port (the kernel spreads connections over
//! them), and `SO_REUSEADDR` as well lets a restart bind while connections on the port are in
//! TIME-WAIT.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use super::TcpListener;

/// Connections the kernel queues before the shard accepts them.
const BACKLOG: libc::c_int = 1024;

/// Binds and listens on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`, for this shard.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    set_flag(&socket, libc::SO_REUSEADDR)?;
    set_flag(&socket, libc::SO_REUSEPORT)?;
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for the socket's family.
    if unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: listen(2) on a bound socket we own.
    if unsafe { libc::listen(fd, BACKLOG) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a bound, listening TCP socket; ownership moves to the listener.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

fn set_flag(socket: &OwnedFd, option: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `addr` as the C socket address bind(2) takes.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than, and aligned for, sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than, and aligned for, sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_listeners_share_a_port_and_accept() {
        super::super::block_on(async {
            let a = listen("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = a.local_addr().unwrap();
            let b = listen(addr).expect("SO_REUSEPORT lets a second shard bind the port");
            assert_eq!(b.local_addr().unwrap(), addr);
            let v6 = listen("[::1]:0".parse().unwrap());
            if let Ok(v6) = v6 {
                assert!(v6.local_addr().unwrap().is_ipv6());
            }
            let client = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
            let accepted = futures_lite::future::or(a.accept(), b.accept()).await;
            assert!(accepted.is_ok());
            client.join().unwrap();
        });
    }
}
