//! `topic list | describe | create`: the admin API on the broker's HTTP port.

use shardlog_client::Admin;

use crate::cli::TopicCommand;

pub async fn run(http: &str, cmd: TopicCommand) -> Result<(), String> {
    let admin = Admin::new(http);
    match cmd {
        TopicCommand::List => {
            let topics = admin.list_topics().await.map_err(|e| e.to_string())?;
            for t in topics {
                println!("{}\t{}", t.name, t.partitions);
            }
        }
        TopicCommand::Describe { name } => {
            let d = admin
                .describe_topic(&name)
                .await
                .map_err(|e| e.to_string())?;
            let rows: Vec<[String; 7]> = d
                .partitions
                .iter()
                .map(|p| {
                    [
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
            print!("{}", table(&rows));
        }
        TopicCommand::Create { name, partitions } => {
            let c = admin
                .create_topic(&name, partitions)
                .await
                .map_err(|e| e.to_string())?;
            let what = if c.created { "created" } else { "exists" };
            println!("{} {} ({} partitions)", c.topic, what, c.partitions);
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

/// Right-aligned columns as wide as their widest cell, so numbers line up.
fn table(rows: &[[String; 7]]) -> String {
    let mut width = HEADER.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 7]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(HEADER);
    for row in rows {
        line([
            &row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[6],
        ]);
    }
    out
}
