//! Cluster mode against a real etcd: three brokers of one shard each register, elect one
//! controller, agree on `GET /v1/cluster`, create a topic concurrently into one layout, see a
//! killed broker go down and the controller move; a data directory keeps its broker id.

mod common;

use std::time::Duration;

use common::cluster::{all_up, cluster_view, controller, states, three_brokers, wait_views};
use common::etcd::Etcd;
use common::http::HttpClient;
use common::Broker;
use serde_json::Value;

#[test]
fn a_topic_created_on_two_brokers_at_once_gets_one_layout_that_every_broker_shows() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up with a controller", all_up(&[1, 2, 3]));
    // Several topics, each created from brokers 1 and 2 at the same moment.
    let topics: Vec<String> = (0..6).map(|i| format!("orders-{i}")).collect();
    for topic in &topics {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
            let handles: Vec<_> = brokers[..2]
                .iter()
                .map(|b| {
                    let (barrier, addr) = (barrier.clone(), b.http);
                    s.spawn(move || {
                        let mut c = HttpClient::connect(addr);
                        barrier.wait();
                        let r = c.request("POST", &format!("/v1/topics/{topic}"), &[], b"");
                        (r.status, serde_json::from_slice(&r.body).expect("JSON"))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created: Vec<bool> = answers
            .iter()
            .map(|(_, v)| v["created"].as_bool().unwrap())
            .collect();
        assert_eq!(created.iter().filter(|c| **c).count(), 1, "{answers:?}");
        for (status, v) in &answers {
            let want = if v["created"].as_bool().unwrap() {
                201
            } else {
                200
            };
            assert_eq!(*status, want, "{v}");
            // One shard on each of three brokers, 4 ranges per shard.
            assert_eq!(v["partitions"], 12, "{v}");
        }
    }
    // Every broker shows the same brokers, controller and topics.
    let views = wait_views(&all, "every topic everywhere", |v| {
        v["topics"]
            .as_array()
            .is_some_and(|t| t.len() == topics.len())
    });
    let shared = |v: &Value| {
        (
            v["brokers"].clone(),
            v["controller"].clone(),
            v["topics"].clone(),
        )
    };
    for v in &views[1..] {
        assert_eq!(shared(v), shared(&views[0]));
    }
    for (i, v) in views.iter().enumerate() {
        assert_eq!(v["broker"], i as u64 + 1);
        assert_eq!(v["cluster"], "shardlog");
    }
    let topic = &views[0]["topics"][0];
    assert_eq!(topic["replication_factor"], 1);
    let parts = topic["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 12);
    let mut next_start = i64::MIN;
    let mut leaders = std::collections::BTreeSet::new();
    for p in parts {
        assert_eq!(p["token_start"].as_i64().unwrap(), next_start, "{p}");
        next_start = p["token_end"].as_i64().unwrap().wrapping_add(1);
        assert_eq!(p["leader_epoch"], 1);
        assert_eq!(p["replicas"], serde_json::json!([p["leader"]]));
        leaders.insert(p["leader"].as_u64().unwrap());
    }
    assert_eq!(next_start, i64::MIN, "the token ranges cover the ring");
    assert_eq!(leaders.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn a_killed_broker_goes_down_and_the_controller_moves_to_a_live_one() {
    let Some(etcd) = Etcd::start() else { return };
    let mut brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    let views = wait_views(&all, "all three up with a controller", all_up(&[1, 2, 3]));
    let first = controller(&views[0]).unwrap();
    assert!(views.iter().all(|v| controller(v) == Some(first)));
    brokers[first as usize - 1].kill9();
    let others: Vec<&Broker> = brokers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u64 + 1 != first)
        .map(|(_, b)| b)
        .collect();
    let views = wait_views(&others, "the dead controller replaced", |v| {
        states(v)
            .iter()
            .all(|(id, s)| (*id == first) == (s == "down"))
            && controller(v).is_some_and(|c| c != first)
    });
    let next = controller(&views[0]);
    assert!(views.iter().all(|v| controller(v) == next));
    // The killed broker is still listed, down, with its addresses.
    let gone = &views[0]["brokers"][first as usize - 1];
    assert_eq!(gone["state"], "down");
    assert!(gone["http"].as_str().is_some_and(|h| !h.is_empty()));
}

#[test]
fn a_data_directory_refuses_another_broker_id() {
    let Some(etcd) = Etcd::start() else { return };
    let mut first = etcd.broker(1);
    first.spawn();
    first.kill9();
    let mut other = first.sharing_data_dir();
    let at = other.extra.iter().position(|a| a == "--broker-id").unwrap();
    other.extra[at + 1] = "2".into();
    let out = other.command().output().expect("run shardlog");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("belongs to broker 1, not --broker-id 2"),
        "{err}"
    );
    // Its own id still starts it (once the killed run's lease has expired).
    let mut again = first.sharing_data_dir();
    again.spawn();
    assert_eq!(cluster_view(&again)["broker"], 1);
}

#[test]
fn a_single_host_has_no_cluster() {
    let b = Broker::start(1);
    let r = HttpClient::connect(b.http).request("GET", "/v1/cluster", &[], b"");
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn a_broker_that_shuts_down_leaves_at_once_not_after_its_session() {
    let Some(etcd) = Etcd::start() else { return };
    // A session far longer than the wait below: only giving up the lease explains "down".
    let mut brokers: Vec<Broker> = (1..=2)
        .map(|id| {
            let mut b = etcd.broker(id);
            let at = b
                .extra
                .iter()
                .position(|a| a == "--session-timeout")
                .unwrap();
            b.extra[at + 1] = "600s".into();
            b.spawn();
            b
        })
        .collect();
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "both up", all_up(&[1, 2]));
    let status = brokers[1].terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    wait_views(&[&brokers[0]], "broker 2 down", |v| {
        states(v) == [(1, "up".to_string()), (2, "down".to_string())]
    });
}
