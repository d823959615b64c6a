//! tessera-meta: Raft-replicated metadata shards.
//!
//! Not built yet: the consensus layer (openraft on RocksDB) and the file-system
//! data model arrive with the metadata-shard work; see `docs/architecture.md`.
