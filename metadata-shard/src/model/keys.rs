//! Every key the data model writes, in one place. Keys start with a one-byte tag naming
//! the keyspace; user ids and paths never contain NUL, so a NUL after them sorts before
//! any byte that can follow, which makes each listing a contiguous range scan.
//! Integers are big-endian so numeric order is key order.
//!
//! | tag | key                                         | value                         |
//! |-----|---------------------------------------------|-------------------------------|
//! | `M` | `M` name                                    | shard counter (u64 BE)        |
//! | `E` | `E` user NUL path                           | `Entry` (file or folder)      |
//! | `V` | `V` user NUL file_id BE version BE          | `VersionRecord`               |
//! | `X` | `X` user NUL file_id BE                     | detached deleted file `Entry` |
//! | `C` | `C` chunk hash (32)                         | reference count (u64 BE)      |
//! | `Z` | `Z` seq BE                                  | chunk hash that dropped to 0  |
//! | `S` | `S` session id (16)                         | `UploadSession`               |
//! | `T` | `T` expires_at (sign-flipped BE) session id | empty (expiry index)          |
//! | `H` | `H` owner NUL path NUL grantee              | `Share`                       |
//! | `W` | `W` grantee NUL owner NUL path              | `SharedWithMe`                |
//! | `L` | `L` token (32)                              | `Link`                        |
//! | `K` | `K` owner NUL path NUL token (32)           | empty (links by path)         |
//! | `G` | `G` user NUL cursor BE                      | `ChangeEvent`                 |
//! | `Q` | `Q` user                                    | last change cursor (u64 BE)   |
//! | `J` | `J` user                                    | last trimmed change cursor (u64 BE) |
//! | `B` | `B` user NUL bucket path                    | `BucketConfig`                |
//! | `U` | `U` upload id (16)                          | `MultipartUpload`             |
//! | `P` | `P` upload id (16) part number BE32         | `PartRecord`                  |
//! | `N` | `N` user NUL path NUL upload id (16)        | empty (uploads by path)       |
//! | `A` | `A` user                                    | logical bytes stored (u64 BE) |
//! | `O` | `O` user                                    | quota in bytes (u64 BE)       |
//! | `R` | `R` chunk hash (32)                         | `ChunkTier` (location record) |
//! | `F` | `F` user                                    | `UserFence` (a move's marker) |
//! | `Y` | `Y` user 0x00 seq (u64 BE)                  | a key written while the user's records were copied out |

use super::types::{Hash32, LinkToken, SessionId, UploadId};

const META: u8 = b'M';
const ENTRY: u8 = b'E';
const VERSION: u8 = b'V';
const DETACHED: u8 = b'X';
const CHUNK_REF: u8 = b'C';
const ZERO_REF: u8 = b'Z';
const SESSION: u8 = b'S';
const SESSION_EXPIRY: u8 = b'T';
const SHARE: u8 = b'H';
const SHARED_WITH_ME: u8 = b'W';
const LINK: u8 = b'L';
const LINK_BY_PATH: u8 = b'K';
const CHANGE: u8 = b'G';
const CHANGE_HEAD: u8 = b'Q';
const CHANGE_FLOOR: u8 = b'J';
const BUCKET: u8 = b'B';
const MULTIPART: u8 = b'U';
const MULTIPART_PART: u8 = b'P';
const MULTIPART_BY_PATH: u8 = b'N';
const USAGE: u8 = b'A';
const QUOTA: u8 = b'O';
const CHUNK_TIER: u8 = b'R';
const FENCE: u8 = b'F';
const DIRTY: u8 = b'Y';

/// Names of the per-shard counters under `M`.
pub const NEXT_ENTRY_ID: &str = "next_entry_id";
pub const ZERO_REF_SEQ: &str = "zero_ref_seq";
/// Users whose writes are logged for a move, with the next log sequence of each.
pub const TRACKED_USERS: &str = "tracked_users";

/// The smallest key greater than every key that starts with `prefix`. All prefixes here
/// start with an ASCII tag, so some byte can always be incremented.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

/// The smallest key greater than `key` itself.
pub fn key_successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(tag);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

fn user_scope(tag: u8, user: &str) -> Vec<u8> {
    tagged(tag, &[user.as_bytes(), &[0]])
}

/// A user's logical bytes stored.
pub fn usage(user: &str) -> Vec<u8> {
    tagged(USAGE, &[user.as_bytes()])
}

/// A user's storage quota in bytes (absent: no limit).
pub fn quota(user: &str) -> Vec<u8> {
    tagged(QUOTA, &[user.as_bytes()])
}

pub fn meta(name: &str) -> Vec<u8> {
    tagged(META, &[name.as_bytes()])
}

/// A user's move marker (`model::user_move`).
pub fn fence(user: &str) -> Vec<u8> {
    tagged(FENCE, &[user.as_bytes()])
}

/// Entry `seq` of the log of keys written for `user` while a move copies it.
pub fn dirty(user: &str, seq: u64) -> Vec<u8> {
    tagged(DIRTY, &[user.as_bytes(), &[0], &seq.to_be_bytes()])
}

/// The range of `user`'s written-key log.
pub fn dirty_scope(user: &str) -> (Vec<u8>, Vec<u8>) {
    let start = user_scope(DIRTY, user);
    let end = prefix_end(&start);
    (start, end)
}

/// The sequence number at the end of a written-key log key.
pub fn dirty_seq(key: &[u8]) -> Option<u64> {
    let at = key.len().checked_sub(8)?;
    Some(u64::from_be_bytes(key[at..].try_into().ok()?))
}

/// Whose records a key range of [`user_key_ranges`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOwner {
    /// Every key in the range is the user's.
    User,
    /// Keyed by id: the record (or the record its key points to) names its owner.
    Session,
    SessionExpiry,
    Link,
    Multipart,
    MultipartPart,
}

/// Every key range that can hold records of `user`, in the order a move copies
/// them: records that index others come after what they index (sessions before
/// their expiry index, uploads before their parts), so an importer can check
/// each key's owner as it arrives. The shard-wide keys (`M`, `C`, `Z`, `R`) and
/// the fence itself are not in any range.
pub fn user_key_ranges(user: &str) -> Vec<(Vec<u8>, Vec<u8>, RangeOwner)> {
    let mut ranges = Vec::new();
    for tag in [BUCKET, ENTRY, CHANGE, SHARE, LINK_BY_PATH, MULTIPART_BY_PATH, VERSION, SHARED_WITH_ME, DETACHED] {
        let start = user_scope(tag, user);
        let end = prefix_end(&start);
        ranges.push((start, end, RangeOwner::User));
    }
    for tag in [USAGE, QUOTA, CHANGE_HEAD, CHANGE_FLOOR] {
        let key = tagged(tag, &[user.as_bytes()]);
        let end = key_successor(&key);
        ranges.push((key, end, RangeOwner::User));
    }
    for (tag, owner) in [
        (LINK, RangeOwner::Link),
        (SESSION, RangeOwner::Session),
        (SESSION_EXPIRY, RangeOwner::SessionExpiry),
        (MULTIPART, RangeOwner::Multipart),
        (MULTIPART_PART, RangeOwner::MultipartPart),
    ] {
        ranges.push((vec![tag], prefix_end(&[tag]), owner));
    }
    ranges
}

/// The session id at the end of an expiry-index key.
pub fn session_of_expiry(key: &[u8]) -> Option<SessionId> {
    key.get(1 + 8..1 + 8 + 16)?.try_into().ok()
}

/// The upload id of a part key.
pub fn upload_of_part(key: &[u8]) -> Option<UploadId> {
    key.get(1..1 + 16)?.try_into().ok()
}

/// Whether `key` is a record of some user (namespace, versions, sessions,
/// shares, links, uploads, usage...), not shard-wide state (counters, chunk
/// reference counts, chunk locations, move markers and logs).
pub fn is_user_record(key: &[u8]) -> bool {
    matches!(
        key.first().copied(),
        Some(
            BUCKET
                | ENTRY
                | VERSION
                | DETACHED
                | SESSION
                | SESSION_EXPIRY
                | SHARE
                | SHARED_WITH_ME
                | LINK
                | LINK_BY_PATH
                | CHANGE
                | CHANGE_HEAD
                | CHANGE_FLOOR
                | MULTIPART
                | MULTIPART_PART
                | MULTIPART_BY_PATH
                | USAGE
                | QUOTA
        )
    )
}

/// Whether `key` is a version record (its value holds chunk references).
pub fn is_version(key: &[u8]) -> bool {
    key.first() == Some(&VERSION)
}

// ---- namespace -------------------------------------------------------------------------

pub fn entry(user: &str, path: &str) -> Vec<u8> {
    tagged(ENTRY, &[user.as_bytes(), &[0], path.as_bytes()])
}

/// Every entry of every user of the shard.
pub fn all_entries() -> (Vec<u8>, Vec<u8>) {
    (vec![ENTRY], prefix_end(&[ENTRY]))
}

/// Start of the user's entries; entry keys of the user are `entry_scope(user) ++ path`.
pub fn entry_scope(user: &str) -> Vec<u8> {
    user_scope(ENTRY, user)
}

/// Range of the entries whose path starts with `path_prefix` (byte-wise).
pub fn entry_prefix_range(user: &str, path_prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let start = entry(user, path_prefix);
    let end = prefix_end(&start);
    (start, end)
}

pub fn version(user: &str, file_id: u64, version: u64) -> Vec<u8> {
    tagged(VERSION, &[user.as_bytes(), &[0], &file_id.to_be_bytes(), &version.to_be_bytes()])
}

/// Every version of every file of `user`.
pub fn user_versions(user: &str) -> (Vec<u8>, Vec<u8>) {
    let start = tagged(VERSION, &[user.as_bytes(), &[0]]);
    let end = prefix_end(&start);
    (start, end)
}

/// Range of versions `from..to` (exclusive) of one file.
pub fn version_range(user: &str, file_id: u64, from: u64, to: u64) -> (Vec<u8>, Vec<u8>) {
    (version(user, file_id, from), version(user, file_id, to))
}

pub fn detached(user: &str, file_id: u64) -> Vec<u8> {
    tagged(DETACHED, &[user.as_bytes(), &[0], &file_id.to_be_bytes()])
}

pub fn detached_scope(user: &str) -> (Vec<u8>, Vec<u8>) {
    let start = user_scope(DETACHED, user);
    let end = prefix_end(&start);
    (start, end)
}

// ---- chunks ----------------------------------------------------------------------------

pub fn chunk_ref(hash: &Hash32) -> Vec<u8> {
    tagged(CHUNK_REF, &[hash])
}

/// Range of the reference counts of chunks whose hash is above `after` (all when `None`).
pub fn chunk_refs_after(after: Option<&Hash32>) -> (Vec<u8>, Vec<u8>) {
    let start = match after {
        // The smallest key above chunk_ref(after): the same bytes with a 0 appended.
        Some(hash) => {
            let mut k = chunk_ref(hash);
            k.push(0);
            k
        }
        None => vec![CHUNK_REF],
    };
    (start, prefix_end(&[CHUNK_REF]))
}

pub fn zero_ref(seq: u64) -> Vec<u8> {
    tagged(ZERO_REF, &[&seq.to_be_bytes()])
}

/// The zero-ref log from `first` (inclusive) to its end.
pub fn zero_ref_from(first: u64) -> (Vec<u8>, Vec<u8>) {
    (zero_ref(first), prefix_end(&[ZERO_REF]))
}

/// A chunk's location record (which storage tier holds it).
pub fn chunk_tier(hash: &Hash32) -> Vec<u8> {
    tagged(CHUNK_TIER, &[hash])
}

/// Range of the location records of chunks whose hash is above `after` (all when `None`).
pub fn chunk_tiers_after(after: Option<&Hash32>) -> (Vec<u8>, Vec<u8>) {
    let start = match after {
        Some(hash) => key_successor(&chunk_tier(hash)),
        None => vec![CHUNK_TIER],
    };
    (start, prefix_end(&[CHUNK_TIER]))
}

// ---- upload sessions -------------------------------------------------------------------

pub fn session(id: &SessionId) -> Vec<u8> {
    tagged(SESSION, &[id])
}

/// Flipping the sign bit makes i64 order equal unsigned byte order.
fn sortable_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn session_expiry(expires_at_ms: i64, id: &SessionId) -> Vec<u8> {
    tagged(SESSION_EXPIRY, &[&sortable_i64(expires_at_ms), id])
}

/// Expiry-index keys of sessions with `expires_at_ms <= now_ms`.
pub fn sessions_expired_by(now_ms: i64) -> (Vec<u8>, Vec<u8>) {
    let start = vec![SESSION_EXPIRY];
    let end = prefix_end(&tagged(SESSION_EXPIRY, &[&sortable_i64(now_ms)]));
    (start, end)
}

// ---- shares and links --------------------------------------------------------------------

pub fn share(owner: &str, path: &str, grantee: &str) -> Vec<u8> {
    tagged(SHARE, &[owner.as_bytes(), &[0], path.as_bytes(), &[0], grantee.as_bytes()])
}

/// Every share `owner` has made (all paths, all grantees).
pub fn shares_of_owner(owner: &str) -> (Vec<u8>, Vec<u8>) {
    let start = user_scope(SHARE, owner);
    let end = prefix_end(&start);
    (start, end)
}

/// Shares of exactly `path`.
pub fn shares_of_path(owner: &str, path: &str) -> (Vec<u8>, Vec<u8>) {
    let start = tagged(SHARE, &[owner.as_bytes(), &[0], path.as_bytes(), &[0]]);
    let end = prefix_end(&start);
    (start, end)
}

/// Shares of the paths that start with `path_prefix` (use `path + "/"` for descendants).
pub fn shares_under(owner: &str, path_prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let start = tagged(SHARE, &[owner.as_bytes(), &[0], path_prefix.as_bytes()]);
    let end = prefix_end(&start);
    (start, end)
}

pub fn shared_with_me(grantee: &str, owner: &str, path: &str) -> Vec<u8> {
    tagged(SHARED_WITH_ME, &[grantee.as_bytes(), &[0], owner.as_bytes(), &[0], path.as_bytes()])
}

pub fn shared_with_me_scope(grantee: &str) -> (Vec<u8>, Vec<u8>) {
    let start = user_scope(SHARED_WITH_ME, grantee);
    let end = prefix_end(&start);
    (start, end)
}

pub fn link(token: &LinkToken) -> Vec<u8> {
    tagged(LINK, &[token])
}

pub fn link_by_path(owner: &str, path: &str, token: &LinkToken) -> Vec<u8> {
    tagged(LINK_BY_PATH, &[owner.as_bytes(), &[0], path.as_bytes(), &[0], token])
}

pub fn links_of_path(owner: &str, path: &str) -> (Vec<u8>, Vec<u8>) {
    let start = tagged(LINK_BY_PATH, &[owner.as_bytes(), &[0], path.as_bytes(), &[0]]);
    let end = prefix_end(&start);
    (start, end)
}

pub fn links_under(owner: &str, path_prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let start = tagged(LINK_BY_PATH, &[owner.as_bytes(), &[0], path_prefix.as_bytes()]);
    let end = prefix_end(&start);
    (start, end)
}

/// The token is the last 32 bytes of a links-by-path key.
pub fn token_of_link_by_path(key: &[u8]) -> Option<LinkToken> {
    let start = key.len().checked_sub(32)?;
    key[start..].try_into().ok()
}

// ---- change log ----------------------------------------------------------------------------

pub fn change(user: &str, cursor: u64) -> Vec<u8> {
    tagged(CHANGE, &[user.as_bytes(), &[0], &cursor.to_be_bytes()])
}

/// The user's change log from `first` (inclusive) to its end.
pub fn changes_from(user: &str, first: u64) -> (Vec<u8>, Vec<u8>) {
    (change(user, first), prefix_end(&user_scope(CHANGE, user)))
}

pub fn change_head(user: &str) -> Vec<u8> {
    tagged(CHANGE_HEAD, &[user.as_bytes()])
}

/// The cursor of the newest event trimmed from a user's change log.
pub fn change_floor(user: &str) -> Vec<u8> {
    tagged(CHANGE_FLOOR, &[user.as_bytes()])
}

/// Every user's change log, from the first event of the first user.
pub fn all_changes() -> (Vec<u8>, Vec<u8>) {
    (vec![CHANGE], prefix_end(&[CHANGE]))
}

/// The user and cursor of a change-log key (`'G' ++ user ++ 0 ++ cursor BE`).
pub fn parse_change(key: &[u8]) -> Option<(&str, u64)> {
    let rest = key.strip_prefix(&[CHANGE])?;
    let (user, cursor) = rest.split_at(rest.len().checked_sub(9)?);
    let cursor = cursor.strip_prefix(&[0])?;
    Some((std::str::from_utf8(user).ok()?, u64::from_be_bytes(cursor.try_into().ok()?)))
}

/// The first key after all of `user`'s change log.
pub fn changes_end(user: &str) -> Vec<u8> {
    prefix_end(&user_scope(CHANGE, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_sort_after_their_folder_and_nul_separates_users() {
        assert!(entry("u", "/a") < entry("u", "/a/b"));
        // "u" NUL ... sorts before "u1" NUL ...: another user's keys never interleave.
        assert!(prefix_end(&entry_scope("u")) <= entry_scope("u1"));
        let (start, end) = entry_prefix_range("u", "/a/");
        assert!(start <= entry("u", "/a/b") && entry("u", "/a/b") < end);
        assert!(!(start <= entry("u", "/a0") && entry("u", "/a0") < end));
    }

    #[test]
    fn expiry_index_orders_negative_times_first() {
        let id = [0u8; 16];
        assert!(session_expiry(-5, &id) < session_expiry(3, &id));
        let (start, end) = sessions_expired_by(3);
        assert!(start <= session_expiry(3, &id) && session_expiry(3, &id) < end);
        assert!(session_expiry(4, &id) >= end);
    }

    #[test]
    fn prefix_end_carries_over_ff() {
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
    }
}

// ---- buckets and multipart uploads -----------------------------------------------------

pub fn bucket(user: &str, bucket_path: &str) -> Vec<u8> {
    tagged(BUCKET, &[user.as_bytes(), &[0], bucket_path.as_bytes()])
}

pub fn multipart(id: &UploadId) -> Vec<u8> {
    tagged(MULTIPART, &[id])
}

pub fn multipart_part(id: &UploadId, part_number: u32) -> Vec<u8> {
    tagged(MULTIPART_PART, &[id, &part_number.to_be_bytes()])
}

/// Parts of one upload with numbers above `after`.
pub fn multipart_parts_after(id: &UploadId, after: u32) -> (Vec<u8>, Vec<u8>) {
    let start = match after.checked_add(1) {
        Some(first) => multipart_part(id, first),
        None => prefix_end(&tagged(MULTIPART_PART, &[id])),
    };
    (start, prefix_end(&tagged(MULTIPART_PART, &[id])))
}

pub fn multipart_by_path(user: &str, path: &str, id: &UploadId) -> Vec<u8> {
    tagged(MULTIPART_BY_PATH, &[user.as_bytes(), &[0], path.as_bytes(), &[0], id])
}

/// The user's uploads whose path starts with `path_prefix`.
pub fn multipart_by_path_prefix(user: &str, path_prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let start = tagged(MULTIPART_BY_PATH, &[user.as_bytes(), &[0], path_prefix.as_bytes()]);
    let end = prefix_end(&start);
    (start, end)
}

/// Start of the user's uploads-by-path keys (the path follows it).
pub fn multipart_by_path_scope(user: &str) -> Vec<u8> {
    user_scope(MULTIPART_BY_PATH, user)
}
