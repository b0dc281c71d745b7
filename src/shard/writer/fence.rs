//! Deleting a partition's writer with its topic: from the moment the topic is marked deleted,
//! frames are refused, queued ones failed, a chunk being written fails its frames instead of
//! acknowledging them, readers waiting for new data wake up and fail, and the log is never
//! opened again. [`PartitionWriter::fence`] then waits until nothing touches the log's files
//! and closes them, so the topic's directory can be renamed away.

use std::rc::Rc;

use super::{PartitionWriter, Pending};
use crate::shard::error::{ProduceError, TopicError};

impl PartitionWriter {
    /// [`TopicError::Deleted`] once the partition's topic has been deleted.
    pub fn check_not_deleted(&self) -> Result<(), TopicError> {
        match self.deleted.get() {
            Some(topic) => Err(TopicError::Deleted {
                topic: topic.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Marks the partition deleted with its topic `topic`, fails what waits, and returns once
    /// its files are closed (or held only by reads about to fail).
    pub async fn fence(self: &Rc<Self>, topic: &str) {
        let _ = self.deleted.set(topic.to_string());
        let queued: Vec<Pending> = std::mem::take(&mut *self.queue.borrow_mut());
        for p in queued {
            let _ = p.reply.send(Err(ProduceError::Topic(TopicError::Deleted {
                topic: topic.to_string(),
            })));
        }
        // Tailing readers look at the mark when they wake.
        self.appended.notify();
        self.wait_idle().await;
        let opening = self.opening.borrow().clone();
        if let Some(flight) = opening {
            flight.wait().await;
        }
        self.wait_closed().await;
        self.read_ahead.clear();
        let log = self.log.borrow_mut().take();
        if let Some(log) = log {
            self.closed_stats.set((0, 0));
            // Reads still holding the log end with an error; the files close when they do.
            if let Ok(log) = Rc::try_unwrap(log) {
                if let Err(e) = log.close().await {
                    tracing::warn!(dir = %self.dir.display(), error = %e,
                        "closing a deleted partition");
                }
            }
        }
        self.files.make_room(None);
    }
}
