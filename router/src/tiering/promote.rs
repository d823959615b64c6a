//! Promotion on read: chunks a router served from a colder tier go back to the
//! first tier soon after, without waiting for the next full pass.

use std::collections::BTreeMap;

use tessera_proto::ChunkHash;

use super::mover::{move_batch, MoveReport, PlannedMove};
use super::{directory, TierPassOptions};
use crate::datapath::DataPath;
use crate::error::RouterError;
use crate::repair::Holdings;

/// Moves each of `hashes` that has a complete copy in the tier its location
/// record names, other than the first, back to the first tier.
pub async fn promote(
    dp: &DataPath,
    hashes: &[ChunkHash],
    options: &TierPassOptions,
) -> Result<MoveReport, RouterError> {
    let tiers = dp.tiers();
    let mut report = MoveReport::default();
    if !tiers.configured() || hashes.is_empty() {
        return Ok(report);
    }
    let records = directory::lookup(dp, hashes).await?;
    let placement = dp.view.placement();
    let holdings = Holdings::fetch(dp, &placement, hashes).await;
    let mut by_tier: BTreeMap<usize, Vec<PlannedMove>> = BTreeMap::new();
    for (row, (hash, record)) in hashes.iter().zip(&records).enumerate() {
        let Some(tier) = record.as_ref().and_then(|r| tiers.by_name(&r.tier)).filter(|t| t.index > 0) else {
            continue;
        };
        let from_fragments: Vec<(String, u8)> = holdings
            .held(row)
            .filter(|(node, _)| tier.has_node(node))
            .flat_map(|(node, indices)| indices.iter().map(move |i| (node.to_owned(), *i)))
            .collect();
        let distinct: std::collections::BTreeSet<u8> = from_fragments.iter().map(|(_, i)| *i).collect();
        if distinct.len() < tier.data_shards() {
            continue;
        }
        let expect_generation = record.as_ref().map(|r| r.generation).unwrap_or(0);
        by_tier.entry(tier.index).or_default().push(PlannedMove { hash: *hash, expect_generation, from_fragments });
    }
    for (from, moves) in by_tier {
        for batch in moves.chunks(options.batch.max(1)) {
            report.absorb(
                move_batch(dp, &tiers.tiers()[from], tiers.hot(), batch, options.parallel, options.move_deadline).await,
            );
        }
    }
    Ok(report)
}
