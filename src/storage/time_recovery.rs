//! Recovery of a segment's time index at open: keep the stored file when it is plausible and
//! covers the whole segment, otherwise rebuild what is missing by decompressing the chunks as
//! streams (see [`super::time_index`] for the format).

use super::chunk::{max_decoded_len, HEADER_LEN, MAX_FRAME_LIMIT};
use super::fs::{FileSystem, SegmentFile};
use super::recovery::{check_at, Window};
use super::segment::Segment;
use super::time_index::{parse_valid_prefix, TimeIndex};
use super::timestamps::scan_timestamps;
use super::StorageError;

/// The time index recovery settled on, and whether its file must be rewritten.
pub(crate) struct RecoveredTime {
    pub index: TimeIndex,
    pub rebuilt: bool,
}

/// Recovers the time index of `seg`, whose chunks recovery has just found (`seg.entries`,
/// `seg.next_offset`). `walked` is the index the walk built when it decompressed every chunk
/// (the last segment after a crash): it is the truth, and the file is rewritten unless it says
/// exactly the same. Otherwise the stored file's plausible prefix is kept and, when it stops
/// short of the segment's end (missing, truncated, garbage), the chunks after it are
/// decompressed to rebuild the rest.
pub(crate) async fn recover_time_index<F: FileSystem>(
    fs: &F,
    seg: &Segment<F>,
    walked: Option<TimeIndex>,
) -> Result<RecoveredTime, StorageError> {
    let path = seg.time_file.path();
    let stored = fs.read_file(path).await.unwrap_or_default();
    let is_chunk_end =
        |o: i64| o == seg.next_offset || seg.entries.binary_search_by_key(&o, |e| e.offset).is_ok();
    let prefix = parse_valid_prefix(&stored, seg.base, &is_chunk_end);
    let whole_file = stored.len() == prefix.len() * super::index::ENTRY_LEN;
    if let Some(index) = walked {
        let rebuilt = !(whole_file && prefix == index.entries);
        return Ok(RecoveredTime { index, rebuilt });
    }
    let mut index = TimeIndex { entries: prefix };
    let complete = match index.covered_to() {
        Some(end) => end == seg.next_offset,
        None => seg.entries.is_empty(),
    };
    if complete {
        return Ok(RecoveredTime {
            index,
            rebuilt: !whole_file,
        });
    }
    let from = index.covered_to().unwrap_or(i64::MIN);
    let first = seg.entries.partition_point(|e| e.offset < from);
    let file_len = seg
        .file
        .file_size()
        .await
        .map_err(StorageError::io("reading the size of", &seg.path))?;
    let mut w = Window::new(&*seg.file, &seg.path, file_len);
    for e in &seg.entries[first..] {
        let want = e.offset;
        let why = match check_at(&mut w, e.pos, &|o| o == want, false).await? {
            Ok((h, _)) => match w.get(e.pos + HEADER_LEN as u64, h.length as usize).await? {
                Some(payload) => {
                    // Streamed: a damaged payload costs its window, not what it expands to.
                    let limit = max_decoded_len(Some(h.record_count), MAX_FRAME_LIMIT);
                    let mut newest = i64::MIN;
                    let scanned = scan_timestamps(&payload, h.record_count, limit, &mut |_, t| {
                        newest = newest.max(t);
                        false
                    });
                    match scanned {
                        Ok(()) => {
                            index.note_chunk(newest, h.end_offset());
                            continue;
                        }
                        Err(e) => e.to_string(),
                    }
                }
                None => "the file ends inside the payload".to_string(),
            },
            Err(why) => why.to_string(),
        };
        // Its records cannot be decoded by any reader either: the time index skips it.
        tracing::warn!(path = %seg.path.display(), pos = e.pos, offset = e.offset,
            reason = %why, "chunk left out of the rebuilt time index");
    }
    index.close_at(seg.next_offset);
    tracing::info!(path = %path.display(), from, entries = index.entries.len(),
        "time index rebuilt from the segment");
    Ok(RecoveredTime {
        index,
        rebuilt: true,
    })
}
