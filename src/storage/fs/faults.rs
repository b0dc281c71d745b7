//! The fail points under [`super::BrokerFs`]: every file operation asks [`injected`] first,
//! whichever implementation runs it, so an end-to-end test can make one partition's fdatasync
//! fail (`SHARDLOG_FAILPOINTS='fs.fdatasync=eio(path=orders/)'`, see `crate::failpoint`) or
//! slow its writes down. Switched off, a call costs one relaxed load of a static flag.

use std::io;
use std::path::Path;

use crate::failpoint::{self, Action};

/// What the fail points ask of one call at `path`: `Err` to fail it with that error,
/// `Ok(true)` to make a write short, `Ok(false)` (the normal case) to go ahead. A `sleep`
/// action waits here first; `panic` panics.
#[inline]
pub(super) async fn injected(point: &'static str, path: &Path) -> io::Result<bool> {
    match failpoint::eval_at(point, path) {
        None => Ok(false),
        Some(action) => act(point, path, action).await,
    }
}

#[cold]
async fn act(point: &'static str, path: &Path, action: Action) -> io::Result<bool> {
    match action {
        Action::Panic => panic!("fail point {point} at {}", path.display()),
        Action::Sleep(d) => {
            crate::rt::sleep(d).await;
            Ok(false)
        }
        Action::Short => Ok(true),
        Action::Eio | Action::Enospc => {
            let e = action
                .error()
                .unwrap_or_else(|| io::Error::other("injected"));
            tracing::warn!(point, path = %path.display(), error = %e, "fail point: injected error");
            Err(e)
        }
    }
}
