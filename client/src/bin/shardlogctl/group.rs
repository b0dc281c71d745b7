//! `group list | describe | reset`: consumer groups through the admin API on the HTTP port.

use shardlog_client::{Admin, ResetTo};

use crate::cli::GroupCommand;
use crate::error::CtlError;
use crate::output::table;

const HEADER: [&str; 6] = ["TOPIC", "PARTITION", "OWNER", "COMMITTED", "END", "LAG"];

pub async fn run(http: &str, cmd: GroupCommand) -> Result<(), CtlError> {
    let admin = Admin::new(http);
    match cmd {
        GroupCommand::List => {
            let groups = admin.list_groups().await?;
            for g in groups {
                println!("{}\t{}", g.name, g.members);
            }
        }
        GroupCommand::Describe { name } => {
            let d = admin.describe_group(&name).await?;
            // "-": no owner (no live member reads it), nothing committed, no such topic.
            let or_dash = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let rows: Vec<Vec<String>> = d
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.owner.clone().unwrap_or_else(|| "-".into()),
                        or_dash(p.committed),
                        or_dash(p.end),
                        or_dash(p.lag),
                    ]
                })
                .collect();
            print!("{}", table(&HEADER, &rows));
        }
        GroupCommand::Reset {
            name,
            topic,
            to,
            to_time,
        } => {
            let to = match (to, to_time) {
                (_, Some(us)) => ResetTo::Time(us),
                (Some(to), None) => to,
                (None, None) => return Err(CtlError::Usage("--to or --to-time is required")),
            };
            let moved = admin.reset_group(&name, &topic, to).await?;
            let rows: Vec<Vec<String>> = moved
                .iter()
                .map(|(j, offset)| vec![j.to_string(), offset.to_string()])
                .collect();
            print!("{}", table(&["PARTITION", "COMMITTED"], &rows));
        }
    }
    Ok(())
}
