//! Rate-limited logging of client protocol errors. A misbehaving client can produce an error
//! per frame; logging each at `warn` would flood the log and spend the shard's time writing
//! it. Each shard (thread) logs at most [`PER_SECOND`] such lines a second and then says how
//! many it left out; everything is still logged at `debug`.

use std::cell::Cell;
use std::fmt::Display;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Lines a shard logs per second at `warn`.
pub const PER_SECOND: u32 = 10;

struct Window {
    start: Cell<Option<Instant>>,
    logged: Cell<u32>,
    suppressed: Cell<u64>,
}

thread_local! {
    static WINDOW: Window = const {
        Window { start: Cell::new(None), logged: Cell::new(0), suppressed: Cell::new(0) }
    };
}

/// Logs a client's protocol error: at `warn` within this shard's budget, else at `debug`.
pub fn client_error(server: &str, peer: Option<SocketAddr>, error: &dyn Display) {
    WINDOW.with(|w| {
        let now = Instant::now();
        let fresh = w
            .start
            .get()
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1));
        if fresh {
            let left_out = w.suppressed.replace(0);
            if left_out > 0 {
                tracing::warn!(
                    left_out,
                    "client protocol errors not logged in the last second"
                );
            }
            w.start.set(Some(now));
            w.logged.set(0);
        }
        if w.logged.get() < PER_SECOND {
            w.logged.set(w.logged.get() + 1);
            tracing::warn!(server, ?peer, %error, "client protocol error");
        } else {
            w.suppressed.set(w.suppressed.get() + 1);
            tracing::debug!(server, ?peer, %error, "client protocol error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_second() {
        for i in 0..25 {
            client_error("test", None, &format!("bad frame {i}"));
        }
        WINDOW.with(|w| {
            assert_eq!(w.logged.get(), PER_SECOND);
            assert_eq!(w.suppressed.get(), 15);
        });
    }
}
