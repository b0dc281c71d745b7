//! Targets for the small files the broker reads at start: a group's consumer offsets, a
//! topic's layout (`topic.toml`) and the TOML config file.

use crate::config::Config;
use crate::consumer::offsets::{self, MAX_NAMED_GROUP};
use crate::shard::topics::{decode_layout, MAX_LAYOUT_PARTITIONS};

/// A consumer offsets file: what decodes re-encodes (under the file's group, or a short one
/// for a version-1 file named by its group) to a file that decodes to the same offsets.
pub fn offsets_file(data: &[u8]) {
    let Ok(file) = offsets::decode_file(data) else {
        return;
    };
    let group = match &file.group {
        Some(g) if g.len() > MAX_NAMED_GROUP => g.clone(),
        // A version-2 file with a short group is not one the broker writes; its offsets still
        // round-trip through a version-1 file.
        _ => "g".to_string(),
    };
    let again = offsets::decode_file(&offsets::encode(&group, &file.offsets))
        .expect("an encoded file decodes");
    assert_eq!(again.offsets, file.offsets);
    if group.len() > MAX_NAMED_GROUP {
        assert_eq!(again.group.as_deref(), Some(group.as_str()));
    }
}

/// A `topic.toml`: an accepted layout has a partition count within bounds, names every
/// partition, maps every token to one of them, and survives a write and a read.
pub fn topic_layout(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(layout) = decode_layout(text) else {
        return;
    };
    let p = layout.partitions();
    assert!((1..=MAX_LAYOUT_PARTITIONS).contains(&p));
    for j in [0, p / 2, p - 1] {
        let id = layout.partition_id(j);
        assert_eq!(
            layout.partition_of_token(id.token) / layout.ranges_per_token_range,
            j / layout.ranges_per_token_range
        );
    }
    for token in [i64::MIN, -1, 0, 1, i64::MAX] {
        assert!(layout.partition_of_token(token) < p);
    }
    let written = toml::to_string(&layout).expect("a layout serializes");
    assert_eq!(decode_layout(&written).ok(), Some(layout));
}

/// The TOML config file, merged over the defaults and validated as `--config` does.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::from_file_text(text) {
        assert!(c.shards >= 1);
        assert!(c.shard_buffer_bytes >= u64::from(c.max_frame_size));
        let _ = c.log_config();
    }
}
