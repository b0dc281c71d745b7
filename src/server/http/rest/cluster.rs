//! `GET /v1/cluster`: in cluster mode, the brokers with their state, and every topic's
//! partitions with token range, replicas, leader and leader epoch, as this broker's watch of
//! etcd has them (docs/cluster.md). A single host answers 404.

use http::StatusCode;

use super::super::message::HttpResponse;

/// The cluster as JSON, or 404 on a single host.
pub fn get() -> HttpResponse {
    match crate::cluster::installed() {
        Some(cluster) => HttpResponse::json(StatusCode::OK, cluster.json()),
        None => HttpResponse::error(
            StatusCode::NOT_FOUND,
            "this broker is a single host: no cluster (see --etcd-endpoints)",
        ),
    }
}
