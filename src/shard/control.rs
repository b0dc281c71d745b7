//! Control work on another core, in the spirit of Seastar's `submit_to`: a boxed closure sent
//! over the mesh and run on the receiving core against its [`Shard`]. The consumer
//! coordinator, connection hand-over and metrics gathering all travel this way, so the mesh
//! carries typed messages for the data plane only and the shard never names their types.
//!
//! State the control plane keeps per core (the coordinator on core 0, each server's queue of
//! handed-over connections) lives in the shard's [`CoreLocals`], found by its type.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures_channel::oneshot;

use super::error::RouteError;
use super::msg::ShardMsg;
use super::Shard;
use crate::rt;

impl Shard {
    /// Runs `task` on core `core` (here, at once, when `core` is this shard).
    pub async fn run_on(
        self: &Rc<Self>,
        core: usize,
        task: impl FnOnce(&Rc<Shard>) + Send + 'static,
    ) -> Result<(), RouteError> {
        if core == self.id {
            task(self);
            return Ok(());
        }
        self.mesh
            .send_to(core, ShardMsg::Run(Box::new(task)))
            .await
            .map_err(|_| RouteError::Unreachable(core))
    }

    /// Runs `work` as a task on core `core` and returns its result here. The closure and the
    /// result cross cores (`Send`); the future it makes stays on `core`.
    pub async fn submit_to<R, F, Fut>(
        self: &Rc<Self>,
        core: usize,
        work: F,
    ) -> Result<R, RouteError>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.run_on(core, move |shard| {
            let fut = work(shard.clone());
            rt::spawn_detached(async move {
                let _ = tx.send(fut.await);
            });
        })
        .await?;
        rx.await.map_err(|_| RouteError::Dropped(core))
    }
}

/// Per-core state of the control plane, one value per type.
#[derive(Default)]
pub struct CoreLocals(RefCell<HashMap<TypeId, Rc<dyn Any>>>);

impl CoreLocals {
    /// This core's `T`, if one was installed.
    pub fn get<T: 'static>(&self) -> Option<Rc<T>> {
        let any = self.0.borrow().get(&TypeId::of::<T>())?.clone();
        any.downcast().ok()
    }

    /// Installs this core's `T`, replacing any earlier one.
    pub fn insert<T: 'static>(&self, value: Rc<T>) {
        self.0.borrow_mut().insert(TypeId::of::<T>(), value);
    }

    /// This core's `T`, installing `make()` first if there is none.
    pub fn get_or_insert_with<T: 'static>(&self, make: impl FnOnce() -> T) -> Rc<T> {
        if let Some(v) = self.get() {
            return v;
        }
        let v = Rc::new(make());
        self.insert(v.clone());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::rt::{pool, ShardMesh};

    /// What a test runs on each shard.
    type Body<T> = fn(Rc<Shard>) -> std::pin::Pin<Box<dyn Future<Output = T>>>;

    /// Two real shards on their own executor threads, joined by a real mesh: each runs `body`
    /// against its shard once both are open, and reports what it returns.
    fn on_two_shards<T: Send + 'static>(body: Body<T>) -> Vec<T> {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: tmp.path().to_path_buf(),
            shards: 2,
            ..Config::default()
        };
        let mesh = ShardMesh::new(2, 16);
        let threads: Vec<_> = (0..2)
            .map(|id| {
                let (config, mesh) = (config.clone(), mesh.clone());
                pool::spawn_shard(id, None, std::time::Duration::ZERO, move || async move {
                    let shard = Shard::open(id, Rc::new(config), Default::default(), mesh)
                        .await
                        .unwrap();
                    shard.serve();
                    let out = body(shard.clone()).await;
                    // Stay up a moment so the other shard's requests are still answered.
                    rt::sleep(std::time::Duration::from_millis(300)).await;
                    out
                })
                .unwrap()
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn submit_to_runs_the_work_on_the_named_core_and_brings_its_answer_back() {
        let answers = on_two_shards(|shard| {
            Box::pin(async move {
                let other = 1 - shard.id;
                // The closure runs on `other`, against that core's shard.
                let there = shard.submit_to(other, |s| async move { s.id }).await;
                // Here, at once.
                let here = shard.submit_to(shard.id, |s| async move { s.id }).await;
                (there, here)
            })
        });
        assert_eq!(answers, vec![(Ok(1), Ok(0)), (Ok(0), Ok(1))]);
    }

    #[test]
    fn run_on_reaches_the_other_cores_locals() {
        struct Mark(usize);
        let seen = on_two_shards(|shard| {
            Box::pin(async move {
                let other = 1 - shard.id;
                let me = shard.id;
                shard
                    .run_on(other, move |s| s.locals.insert(Rc::new(Mark(me))))
                    .await
                    .unwrap();
                // Wait until the other shard's mark has arrived here.
                loop {
                    if let Some(m) = shard.locals.get::<Mark>() {
                        break m.0;
                    }
                    rt::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
        });
        assert_eq!(
            seen,
            vec![1, 0],
            "each core holds the mark the other one sent"
        );
    }

    #[test]
    fn a_core_outside_the_mesh_is_unreachable() {
        let answers = on_two_shards(|shard| {
            Box::pin(async move { shard.submit_to(7, |s| async move { s.id }).await })
        });
        assert_eq!(
            answers,
            vec![
                Err(RouteError::Unreachable(7)),
                Err(RouteError::Unreachable(7))
            ]
        );
    }

    #[test]
    fn locals_are_found_by_type() {
        struct Counter(u32);
        let locals = CoreLocals::default();
        assert!(locals.get::<Counter>().is_none());
        assert_eq!(locals.get_or_insert_with(|| Counter(7)).0, 7);
        assert_eq!(
            locals.get_or_insert_with(|| Counter(9)).0,
            7,
            "kept the first"
        );
        locals.insert(Rc::new(Counter(3)));
        assert_eq!(locals.get::<Counter>().map(|c| c.0), Some(3));
        assert!(locals.get::<String>().is_none());
    }
}
