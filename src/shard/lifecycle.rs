//! A shard's lifecycle: serving, then stopping (graceful shutdown). Servers watch it to stop
//! accepting and reading; the broker flips it when a signal arrives.

use std::cell::Cell;

use super::notify::LocalNotify;

#[derive(Default)]
pub struct Lifecycle {
    stopping: Cell<bool>,
    changed: LocalNotify,
}

impl Lifecycle {
    /// Starts the graceful shutdown of this shard (idempotent).
    pub fn stop(&self) {
        if !self.stopping.replace(true) {
            self.changed.notify();
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Resolves once the shard is stopping.
    pub async fn stopped(&self) {
        while !self.stopping.get() {
            self.changed.notified().await;
        }
    }
}
