//! `topic list | describe | create | delete`: the admin API on the broker's HTTP port.

use shardlog_client::Admin;

use crate::cli::TopicCommand;
use crate::error::CtlError;
use crate::output::table;

pub async fn run(http: &str, cmd: TopicCommand) -> Result<(), CtlError> {
    let admin = Admin::new(http);
    match cmd {
        TopicCommand::List => {
            let topics = admin.list_topics().await?;
            for t in topics {
                println!("{}\t{}", t.name, t.partitions);
            }
        }
        TopicCommand::Describe { name } => {
            let d = admin.describe_topic(&name).await?;
            let rows: Vec<Vec<String>> = d
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.partition.to_string(),
                        p.token.to_string(),
                        p.range_index.to_string(),
                        p.shard.to_string(),
                        p.first_offset.to_string(),
                        p.next_offset.to_string(),
                        p.bytes.to_string(),
                    ]
                })
                .collect();
            print!("{}", table(&HEADER, &rows));
        }
        TopicCommand::Create { name, partitions } => {
            let c = admin.create_topic(&name, partitions).await?;
            let what = if c.created { "created" } else { "exists" };
            println!("{} {} ({} partitions)", c.topic, what, c.partitions);
        }
        TopicCommand::Delete { name } => {
            let d = admin.delete_topic(&name).await?;
            println!("{} deleted ({} partitions)", d.topic, d.partitions);
            if !d.groups.is_empty() {
                println!("committed offsets dropped for: {}", d.groups.join(", "));
            }
        }
    }
    Ok(())
}

const HEADER: [&str; 7] = [
    "PARTITION",
    "TOKEN",
    "RANGE",
    "SHARD",
    "FIRST OFFSET",
    "NEXT OFFSET",
    "BYTES",
];
