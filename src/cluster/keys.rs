//! Where the cluster's state lives in etcd: every key starts with `/{cluster-name}/`.
//!
//! | key | value | lease |
//! | --- | --- | --- |
//! | `brokers/{id}` | [`BrokerRecord`](super::records::BrokerRecord) | the broker's |
//! | `broker-ids/{id}` | the same record, kept when the broker is down | none |
//! | `controller` | [`ControllerRecord`](super::records::ControllerRecord) | the controller's |
//! | `topics/{name}` | [`TopicRecord`](super::records::TopicRecord) | none |
//! | `partitions/{name}/{j}` | [`PartitionRecord`](super::records::PartitionRecord) | none |
//! | `offsets/{name}/{group}` | a group's committed offsets in the topic | none |
//!
//! A topic's keys (its layout, its partitions, every group's offsets in it) all start with
//! one of three prefixes that name it, so deleting a topic is one transaction.

/// The keys of one cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// What a key of the cluster names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A live broker's registration (leased).
    Live(u32),
    /// A broker that has ever registered.
    Known(u32),
    Controller,
    Topic(String),
    Partition(String, u32),
}

impl Keys {
    pub fn new(cluster: &str) -> Keys {
        Keys {
            prefix: format!("/{cluster}/"),
        }
    }

    /// The prefix every key of the cluster starts with (what brokers watch).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn live(&self, id: u32) -> String {
        format!("{}brokers/{id}", self.prefix)
    }

    /// The prefix of every live broker's key.
    pub fn live_prefix(&self) -> String {
        format!("{}brokers/", self.prefix)
    }

    pub fn known(&self, id: u32) -> String {
        format!("{}broker-ids/{id}", self.prefix)
    }

    /// The prefix of every broker's last registration, up or down.
    pub fn known_prefix(&self) -> String {
        format!("{}broker-ids/", self.prefix)
    }

    pub fn controller(&self) -> String {
        format!("{}controller", self.prefix)
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}topics/{name}", self.prefix)
    }

    pub fn partition(&self, topic: &str, j: u32) -> String {
        format!("{}partitions/{topic}/{j}", self.prefix)
    }

    /// The prefix of every partition record of `topic` (the trailing `/` keeps `orders`
    /// from matching `orders2`).
    pub fn partitions_prefix(&self, topic: &str) -> String {
        format!("{}partitions/{topic}/", self.prefix)
    }

    /// A group's committed offsets in `topic`.
    pub fn offsets(&self, topic: &str, group: &str) -> String {
        format!("{}offsets/{topic}/{group}", self.prefix)
    }

    /// The prefix of every committed offset of every group.
    pub fn offsets_all_prefix(&self) -> String {
        format!("{}offsets/", self.prefix)
    }

    /// The prefix of every group's committed offsets in `topic`.
    pub fn offsets_prefix(&self, topic: &str) -> String {
        format!("{}offsets/{topic}/", self.prefix)
    }

    /// What `key` names, if it is one of this cluster's.
    pub fn parse(&self, key: &str) -> Option<Key> {
        let rest = key.strip_prefix(&self.prefix)?;
        if rest == "controller" {
            return Some(Key::Controller);
        }
        let (kind, name) = rest.split_once('/')?;
        match kind {
            "brokers" => name.parse().ok().map(Key::Live),
            "broker-ids" => name.parse().ok().map(Key::Known),
            "topics" if !name.is_empty() && !name.contains('/') => {
                Some(Key::Topic(name.to_string()))
            }
            "partitions" => {
                let (topic, j) = name.rsplit_once('/')?;
                (!topic.is_empty() && !topic.contains('/'))
                    .then(|| j.parse().ok().map(|j| Key::Partition(topic.to_string(), j)))?
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_back() {
        let k = Keys::new("prod");
        assert_eq!(k.parse(&k.live(3)), Some(Key::Live(3)));
        assert_eq!(k.parse(&k.known(3)), Some(Key::Known(3)));
        assert_eq!(k.parse(&k.controller()), Some(Key::Controller));
        assert_eq!(k.parse(&k.topic("a.b")), Some(Key::Topic("a.b".into())));
        assert_eq!(
            k.parse(&k.partition("a.b", 7)),
            Some(Key::Partition("a.b".into(), 7))
        );
        assert!(k.live(1).starts_with(&k.live_prefix()));
        assert!(k.partition("a", 3).starts_with(&k.partitions_prefix("a")));
        assert!(!k.partition("ab", 3).starts_with(&k.partitions_prefix("a")));
        assert!(k.offsets("a", "g").starts_with(&k.offsets_prefix("a")));
        assert!(!k.offsets("ab", "g").starts_with(&k.offsets_prefix("a")));
        // Offsets are not part of the watched state.
        assert_eq!(k.parse(&k.offsets("a", "g")), None);
        for other in [
            "/other/controller",
            "/prod/brokers/x",
            "/prod/partitions/t",
            "/prod/x/y",
        ] {
            assert_eq!(k.parse(other), None, "{other}");
        }
    }
}
