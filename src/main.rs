//! The `shardlog` binary: flags → [`Config`] → [`broker::run`].

use shardlog::broker;
use shardlog::config::Config;
use tracing_subscriber::EnvFilter;

fn main() {
    let config = match Config::from_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardlog: {e}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Shards never block on the log: lines go through a queue to a writer thread (lossy only
    // if it falls far behind). The guard flushes the queue when `main` returns.
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    // Colour codes only for a person at a terminal, never into a file or a journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    let result = broker::run(config);
    drop(guard);
    if let Err(e) = result {
        eprintln!("shardlog: {e}");
        std::process::exit(1);
    }
}
