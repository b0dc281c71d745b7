//! The command line, as clap derives it: every command has `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shardlog_client::ResetTo;

const EXIT_CODES: &str = "Exit codes: 0 success, 1 a broker or connection error (one line on \
stderr, starting with \"shardlogctl:\"), 2 bad usage.";

/// Topics, producing and consuming on a shardlog broker.
#[derive(Debug, Parser)]
#[command(name = "shardlogctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The broker's framed-protocol address (produce, consume).
    #[arg(
        long,
        global = true,
        env = "SHARDLOG_BROKER",
        default_value = "127.0.0.1:9254"
    )]
    pub broker: String,
    /// The broker's HTTP address (topics; partition numbers and producer routing).
    #[arg(
        long,
        global = true,
        env = "SHARDLOG_HTTP",
        default_value = "127.0.0.1:9252"
    )]
    pub http: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, describe or create topics (the admin API on the HTTP port).
    #[command(subcommand, after_help = EXIT_CODES)]
    Topic(TopicCommand),
    /// List, describe or reset consumer groups (the admin API on the HTTP port).
    #[command(subcommand, after_help = EXIT_CODES)]
    Group(GroupCommand),
    /// Produce one message per line of standard input or a file.
    #[command(after_help = EXIT_CODES)]
    Produce(ProduceArgs),
    /// Consume a topic with a consumer group, or read one partition from an offset.
    #[command(after_help = EXIT_CODES)]
    Consume(ConsumeArgs),
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Every topic and its partition count, one per line.
    #[command(after_help = EXIT_CODES)]
    List,
    /// A topic's partitions: token, range, shard, offsets and bytes.
    #[command(after_help = EXIT_CODES)]
    Describe {
        /// The topic.
        name: String,
    },
    /// Create a topic (says whether it was created or existed already).
    #[command(after_help = EXIT_CODES)]
    Create {
        /// The topic.
        name: String,
        /// Partition count (default: the broker's, shards × ranges per shard).
        #[arg(long)]
        partitions: Option<u32>,
    },
    /// Delete a topic: its files, its layout and its groups' committed offsets. An unknown
    /// topic is an error (exit 1).
    #[command(after_help = EXIT_CODES)]
    Delete {
        /// The topic.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Every group and its live member count, one per line.
    #[command(after_help = EXIT_CODES)]
    List,
    /// A group's partitions: topic, partition, owner, committed offset, end, lag.
    #[command(after_help = EXIT_CODES)]
    Describe {
        /// The group.
        name: String,
    },
    /// Move a group's committed offsets in every partition of a topic (refused while the
    /// group has live members).
    #[command(after_help = EXIT_CODES)]
    #[command(group = clap::ArgGroup::new("target").required(true).args(["to", "to_time"]))]
    Reset {
        /// The group.
        name: String,
        /// The topic whose partitions are moved.
        #[arg(long)]
        topic: String,
        /// `earliest` (the first offset still available), `latest` (only what is produced
        /// from now on) or an offset (moved into each partition's range).
        #[arg(long, value_name = "earliest|latest|N", value_parser = ResetTo::parse)]
        to: Option<ResetTo>,
        /// In each partition, the first record at or after this time (RFC 3339, e.g.
        /// 2026-11-30T22:15:00Z, or milliseconds since the Unix epoch); the end where every
        /// record is older.
        #[arg(long, value_name = "TIME", value_parser = time_us)]
        to_time: Option<i64>,
    },
}

/// A time (RFC 3339 or Unix milliseconds) as μs since the Unix epoch.
fn time_us(s: &str) -> Result<i64, shardlog_client::wire::time::BadTime> {
    shardlog_client::wire::time::parse_time_us(s)
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic.
    pub topic: String,
    /// One key for every message (all go to its partition, in order).
    #[arg(long, conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// Each line is KEY SEP VALUE, split at the first SEP; a line without SEP (or with an
    /// empty key) is sent without a key.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Read the lines from this file instead of standard input.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Each value as it is stored, one per line.
    Text,
    /// One JSON object per line: topic, partition, offset, timestamp (µs), value.
    Json,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["group", "partition"]))]
pub struct ConsumeArgs {
    /// The topic.
    pub topic: String,
    /// Consume as a member of this consumer group (commits what was printed).
    #[arg(long)]
    pub group: Option<String>,
    /// The member id (default: shardlogctl-HOSTNAME-PID).
    #[arg(long, conflicts_with = "partition")]
    pub id: Option<String>,
    /// A group with nothing committed starts at the oldest record (else at the newest).
    #[arg(long, conflicts_with = "partition")]
    pub from_beginning: bool,
    /// Read this partition (its index) without a group; nothing is committed.
    #[arg(long, value_name = "P")]
    pub partition: Option<u32>,
    /// The first offset to read with --partition (default 0).
    #[arg(long, value_name = "N", conflicts_with = "group")]
    pub offset: Option<i64>,
    /// With --partition: start at the first record at or after this time (RFC 3339, e.g.
    /// 2026-11-30T22:15:00Z, or milliseconds since the Unix epoch) instead of an offset.
    #[arg(long, value_name = "TIME", value_parser = time_us, conflicts_with_all = ["group", "offset"])]
    pub from_time: Option<i64>,
    /// Stop after printing N records.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Keep waiting for new records (until --count or Ctrl-C) instead of stopping when a
    /// poll returns nothing.
    #[arg(long)]
    pub follow: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
