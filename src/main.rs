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
    tracing_subscriber::fmt().with_env_filter(filter).init();
    if let Err(e) = broker::run(config) {
        eprintln!("shardlog: {e}");
        std::process::exit(1);
    }
}
