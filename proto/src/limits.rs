//! Bounds every writer to etcd must respect, and bounds on what a client
//! can make Bootes store or repeat (docs/DESIGN.md §4, §5).
//!
//! * etcd's own limits, which both the controller's plan and the
//!   xds-servers' status records respect.
//! * A NACK's `error_detail` is client text of any size, and it reaches
//!   logs, metrics, CSDS, etcd and object status. Both processes cut it with
//!   the one function here, and every `status/` record is bounded before it
//!   is written.

use prost::Message;

use crate::store;

/// Operations per transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// The largest value written: etcd refuses requests over 1.5 MiB
/// (`--max-request-bytes`), and a put carries its key and framing too.
pub const MAX_VALUE_BYTES: usize = 1_400_000;

/// Default bound on a NACK detail, in bytes (Envoy's own messages are far
/// shorter; a few KiB keeps them whole).
pub const DEFAULT_MAX_NACK_DETAIL: usize = 4096;

/// Default bound on one encoded `status/` record.
pub const DEFAULT_MAX_STATUS_RECORD: usize = 64 * 1024;

/// etcd's default request limit (`--max-request-bytes`, 1.5 MiB). Every
/// status transaction stays below it with room to spare.
pub const ETCD_REQUEST_LIMIT: usize = 1536 * 1024;

/// Default bound on a node ID (the longest `<pod>.<namespace>` is 253 + 1 + 63).
pub const DEFAULT_MAX_NODE_ID: usize = 320;

/// `detail` cut to at most `max` bytes (on a character boundary), with a
/// note saying how much was dropped. Control characters other than newline
/// and tab become spaces, so the text cannot forge log lines or terminal
/// escapes.
pub fn nack_detail(detail: &str, max: usize) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    ' '
                } else {
                    c
                }
            })
            .collect()
    };
    if detail.len() <= max {
        return clean(detail);
    }
    let note = format!(" [… {} bytes cut]", detail.len());
    let keep = max.saturating_sub(note.len());
    let mut end = keep.min(detail.len());
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = clean(&detail[..end]);
    if out.len() + note.len() <= max {
        out.push_str(&note);
    }
    out
}

/// Makes `status` encode to at most `max` bytes: details are cut to
/// `max_detail`, then the largest lists of NACKed resource names are dropped
/// (noted in the detail), then the largest lists of resource versions (the
/// node then counts as pending for the objects of that type), then every
/// detail. Only identity and versions remain in the worst case, whose size
/// the caller bounds (node ID length).
pub fn bound_status(status: &mut store::NodeStatus, max: usize, max_detail: usize) {
    for t in &mut status.types {
        if t.nack_detail.len() > max_detail {
            t.nack_detail = nack_detail(&t.nack_detail, max_detail);
        }
    }
    while status.encoded_len() > max {
        let Some(t) = status
            .types
            .iter_mut()
            .filter(|t| !t.nacked_resources.is_empty())
            .max_by_key(|t| t.nacked_resources.iter().map(String::len).sum::<usize>())
        else {
            break;
        };
        let n = std::mem::take(&mut t.nacked_resources).len();
        t.nack_detail = nack_detail(
            &format!(
                "[names of the {n} rejected resources omitted] {}",
                t.nack_detail
            ),
            max_detail,
        );
    }
    let versions =
        |t: &store::TypeStatus| t.acked_resource_versions.len() + t.nacked_resource_versions.len();
    while status.encoded_len() > max {
        let Some(t) = status
            .types
            .iter_mut()
            .filter(|t| versions(t) > 0)
            .max_by_key(|t| versions(t))
        else {
            break;
        };
        t.acked_resource_versions.clear();
        t.nacked_resource_versions.clear();
    }
    if status.encoded_len() > max {
        for t in &mut status.types {
            t.nack_detail.clear();
        }
    }
}

/// Splits encoded sizes into consecutive groups whose total stays within
/// `limit` (a single item over the limit gets a group of its own). Returns
/// the group lengths.
pub fn batches(
    sizes: impl IntoIterator<Item = usize>,
    max_items: usize,
    limit: usize,
) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut n, mut total) = (0usize, 0usize);
    for size in sizes {
        if n > 0 && (n == max_items || total + size > limit) {
            out.push(n);
            (n, total) = (0, 0);
        }
        n += 1;
        total += size;
    }
    if n > 0 {
        out.push(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_details_stay_whole_and_long_ones_are_cut_with_a_note() {
        assert_eq!(nack_detail("bad cluster", 100), "bad cluster");
        let long = "x".repeat(1 << 20);
        let cut = nack_detail(&long, 4096);
        assert!(cut.len() <= 4096, "{}", cut.len());
        assert!(
            cut.ends_with(" [… 1048576 bytes cut]"),
            "{}",
            &cut[cut.len() - 40..]
        );
        assert!(cut.starts_with("xxxx"));
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        let long = "é".repeat(5000);
        for max in [0, 1, 2, 3, 30, 31, 4096] {
            let cut = nack_detail(&long, max);
            assert!(cut.len() <= max, "{max}: {}", cut.len());
        }
    }

    #[test]
    fn control_characters_cannot_forge_log_lines() {
        assert_eq!(nack_detail("a\r\x1b[2Jb\nc\td", 100), "a  [2Jb\nc\td");
    }

    fn status_with(detail: usize, names: usize) -> store::NodeStatus {
        store::NodeStatus {
            node_id: "edge-0.shop".into(),
            replica: "r1".into(),
            types: (0..9)
                .map(|i| store::TypeStatus {
                    type_url: format!("type.googleapis.com/t{i}"),
                    acked_version: "v".repeat(16),
                    nacked_version: "w".repeat(16),
                    nack_detail: "d".repeat(detail),
                    nacked_resources: (0..names).map(|n| format!("resource-{n:08}")).collect(),
                    acked_resource_versions: (0..names).map(|n| format!("{n:016x}")).collect(),
                    nacked_resource_versions: (0..names).map(|n| format!("{n:016x}")).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_status_record_never_exceeds_its_bound() {
        for (detail, names, max) in [
            (2 << 20, 0, DEFAULT_MAX_STATUS_RECORD),
            (100, 100_000, DEFAULT_MAX_STATUS_RECORD),
            (2 << 20, 100_000, 4096),
            (4096, 10, 1024),
        ] {
            let mut s = status_with(detail, names);
            bound_status(&mut s, max, DEFAULT_MAX_NACK_DETAIL);
            assert!(
                s.encoded_len() <= max,
                "{detail}/{names}/{max}: {}",
                s.encoded_len()
            );
            assert_eq!(s.types.len(), 9, "every type keeps its versions");
            assert!(s.types.iter().all(|t| t.nacked_version == "w".repeat(16)));
        }
    }

    #[test]
    fn a_small_status_record_is_left_alone() {
        let mut s = status_with(100, 3);
        let before = s.clone();
        bound_status(&mut s, DEFAULT_MAX_STATUS_RECORD, DEFAULT_MAX_NACK_DETAIL);
        assert_eq!(s, before);
    }

    #[test]
    fn batches_respect_count_and_size() {
        assert_eq!(batches([10, 10, 10], 2, 100), [2, 1]);
        assert_eq!(batches([60, 60, 30, 10], 10, 100), [1, 3]);
        assert_eq!(
            batches([200, 10], 10, 100),
            [1, 1],
            "an oversized item alone"
        );
        assert!(batches([], 10, 100).is_empty());
    }
}
