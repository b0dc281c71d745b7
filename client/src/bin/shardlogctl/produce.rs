//! `produce`: one message per line of standard input or a file, through the client's
//! `Producer` (batched, pipelined, retried), with `admin` set so keyed lines of one partition
//! share batches.

use shardlog_client::{ClientError, Producer, ProducerConfig};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use crate::cli::ProduceArgs;
use crate::error::CtlError;

pub async fn run(broker: &str, http: &str, args: ProduceArgs) -> Result<(), CtlError> {
    let input: Box<dyn AsyncRead + Unpin> =
        match &args.file {
            Some(path) => Box::new(tokio::fs::File::open(path).await.map_err(|source| {
                CtlError::ReadFile {
                    path: path.clone(),
                    source,
                }
            })?),
            None => Box::new(tokio::io::stdin()),
        };
    let producer = Producer::new(ProducerConfig {
        admin: Some(http.to_string()),
        ..ProducerConfig::new(broker)
    })?;
    // Deliveries are awaited by a task of their own while lines are still read, so memory
    // stays bounded by the producer's unacknowledged-bytes budget, not by the input's size.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counter = tokio::spawn(async move {
        let mut acked = 0u64;
        let mut first_error: Option<ClientError> = None;
        while let Some(delivery) = rx.recv().await {
            match delivery.await {
                Ok(()) => acked += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        (acked, first_error)
    });
    let mut lines = BufReader::new(input);
    let mut line = Vec::new();
    let mut sent = 0u64;
    let mut read_error = None;
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                read_error = Some(CtlError::ReadInput(e));
                break;
            }
        }
        let body = trim_newline(&line);
        if body.is_empty() {
            continue;
        }
        let (key, value) = split(body, &args);
        match producer.send(&args.topic, key, value.to_vec()).await {
            Ok(delivery) => {
                sent += 1;
                let _ = tx.send(delivery);
            }
            Err(e) => {
                read_error = Some(e.into());
                break;
            }
        }
    }
    drop(tx);
    producer.flush().await;
    let (acked, first_error) = counter.await?;
    println!("{acked} of {sent} messages acknowledged");
    if let Some(why) = read_error {
        return Err(why);
    }
    match first_error {
        Some(first) => Err(CtlError::NotAcknowledged {
            missing: sent - acked,
            first,
        }),
        None => Ok(()),
    }
}

/// The line without its `\n` (or `\r\n`: files written on Windows).
fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The key (if any) and value of a line, by `--key` or `--key-separator`.
fn split<'a>(line: &'a [u8], args: &'a ProduceArgs) -> (Option<&'a [u8]>, &'a [u8]) {
    if let Some(key) = &args.key {
        return (Some(key.as_bytes()), line);
    }
    let Some(sep) = args.key_separator.as_deref().map(str::as_bytes) else {
        return (None, line);
    };
    if sep.is_empty() {
        return (None, line);
    }
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(0) => (None, &line[sep.len()..]),
        Some(i) => (Some(&line[..i]), &line[i + sep.len()..]),
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(key: Option<&str>, sep: Option<&str>) -> ProduceArgs {
        ProduceArgs {
            topic: "t".into(),
            key: key.map(Into::into),
            key_separator: sep.map(Into::into),
            file: None,
        }
    }

    #[test]
    fn splits_at_the_first_separator() {
        let a = args(None, Some("::"));
        assert_eq!(split(b"k::v::w", &a), (Some(&b"k"[..]), &b"v::w"[..]));
        assert_eq!(split(b"no key", &a), (None, &b"no key"[..]));
        assert_eq!(split(b"::v", &a), (None, &b"v"[..]));
        let k = args(Some("fixed"), None);
        assert_eq!(split(b"a:b", &k), (Some(&b"fixed"[..]), &b"a:b"[..]));
    }

    #[test]
    fn trims_lf_and_crlf() {
        assert_eq!(trim_newline(b"a\r\n"), b"a");
        assert_eq!(trim_newline(b"a\n"), b"a");
        assert_eq!(trim_newline(b"a"), b"a");
    }
}
