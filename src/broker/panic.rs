//! A panic on any thread ends the process. Shards share nothing but the mesh, so a shard that
//! died would leave the others serving half the partitions and forwarding into a channel no
//! one reads: a broker that looks alive and is not. Exiting lets the service manager restart
//! it, and recovery makes the restart safe (nothing is acknowledged before it is durable).

/// Installs the hook: the default report (message, location, backtrace if asked for), one
/// line saying why the process ends, then `abort` — no unwinding into half-updated state, no
/// destructors racing the other shards.
pub fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let thread = std::thread::current();
        // stderr, not the log: the log is written by a queue thread that aborting outruns.
        eprintln!(
            "shardlog: thread {} panicked; exiting so the broker restarts (acknowledged messages are durable)",
            thread.name().unwrap_or("<unnamed>")
        );
        std::process::abort();
    }));
}
