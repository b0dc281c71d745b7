//! PolarStreams' REST API on the HTTP port (both HTTP versions, through the router):
//!
//! - [`consumer`]: register, poll (binary or JSON), commit, goodbye.
//! - [`cluster`]: `GET /v1/cluster` (cluster mode's brokers, topics and partition leaders).
//! - [`commit_json`]: a commit's optional explicit positions.
//! - [`groups`]: `GET /v1/groups`, `GET /v1/groups/{group}` (members, offsets, lag).
//! - [`poll_json`]: the JSON form of a poll response, bounded and yielding.
//! - [`produce`]: `POST /v1/topic/{topic}/messages` (JSON and NDJSON).
//! - [`query`]: query-string parsing with percent-decoding.
//! - [`topics`]: `GET /v1/topics`, `GET /v1/topics/{name}` (list, describe),
//!   `POST /v1/topics/{name}`, creating a topic explicitly, and `DELETE /v1/topics/{name}`.
//! - [`topics_json`]: the JSON of the list, the description and a deletion.
//! - [`time_offset`]: `GET /v1/topics/{name}/partitions/{p}/offset?time=` (offset for a time).
//!
//! See the "HTTP API" section of `docs/protocol.md`.

pub mod cluster;
pub mod commit_json;
pub mod consumer;
pub mod groups;
pub mod poll_json;
pub mod produce;
pub mod query;
pub mod time_offset;
pub mod topics;
pub mod topics_json;
