//! Produces a few keyed messages and reads them back through a consumer group.
//!
//! ```sh
//! cargo run --release                                   # a broker, in another terminal
//! cargo run -p shardlog-client --example produce_consume -- 127.0.0.1:9254
//! ```

use shardlog_client::{ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let broker = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9254".into());
    let producer = Producer::new(ProducerConfig::new(&broker))?;
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let key = format!("user-{}", i % 3);
        let value = format!("event {i} of {key}");
        deliveries.push(
            producer
                .send("example", Some(key.as_bytes()), value)
                .await?,
        );
    }
    for d in deliveries {
        d.await?;
    }
    println!("10 messages stored");

    let config = ConsumerConfig::new(&broker, "example-group", "example-member", &["example"]);
    let mut consumer = Consumer::join(config).await?;
    let mut seen = 0;
    while seen < 10 {
        let records = consumer.poll().await?;
        if records.is_empty() {
            break;
        }
        for r in &records {
            println!("offset {}: {}", r.offset, String::from_utf8_lossy(&r.value));
        }
        seen += records.len();
    }
    consumer.close().await?;
    Ok(())
}
