//! Storage tiering: the tiers (hot, warm, cold...) block nodes are grouped into,
//! each with its own erasure code and compression, and when chunks move between
//! them. The configuration lives in the cluster group (`ClusterCommand::SetTiering`);
//! which tier each chunk is in lives in the metadata shards' chunk location records
//! (`model::chunk_tiers`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `tiers.toml`, stored in the cluster group by `tessera admin tier set`.
///
/// ```toml
/// [[tier]]
/// name = "hot"
/// demote_after = "30d"
///
/// [[tier]]
/// name = "cold"
/// label = "cold"
/// data_shards = 10
/// parity_shards = 4
/// compression = "zstd"
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TieringConfig {
    /// Hottest first. New chunks are written to the first tier.
    #[serde(rename = "tier")]
    pub tiers: Vec<TierSpec>,
}

/// One tier of [`TieringConfig`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    /// `[a-z0-9-]+`, unique; what chunk location records name.
    pub name: String,
    /// Block nodes carrying this label form the tier; the first tier also takes
    /// every node without any tier's label.
    #[serde(default)]
    pub label: String,
    /// Reed–Solomon data shards of this tier; must be unset on the first tier (it
    /// uses the data path's code), required on the others.
    #[serde(default)]
    pub data_shards: Option<u8>,
    /// Reed–Solomon parity shards of this tier; unset on the first tier, required
    /// on the others.
    #[serde(default)]
    pub parity_shards: Option<u8>,
    /// How chunks are compressed in this tier (always none on the first tier).
    #[serde(default)]
    pub compression: Compression,
    /// Chunks not read for this long move to the next colder tier; required on
    /// every tier but the last, refused on the last. In TOML a humantime string:
    /// "30d", "90days", "2s".
    #[serde(default, with = "humantime_serde")]
    pub demote_after: Option<Duration>,
}

/// Compression of a tier's chunks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Zstd,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl TieringConfig {
    /// Parses `tiers.toml` (unknown keys are refused, naming the key) and validates it.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| format!("tiers.toml: {}", e.to_string().trim_end()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules of every tier; the message names the tier and the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.tiers.len() < 2 {
            return Err(format!("tiering needs at least 2 tiers, found {}", self.tiers.len()));
        }
        let last = self.tiers.len() - 1;
        let mut names = BTreeSet::new();
        let mut labels = BTreeSet::new();
        for (i, tier) in self.tiers.iter().enumerate() {
            let name = &tier.name;
            if name.is_empty() {
                return Err(format!("tier {}: name is empty", i + 1));
            }
            if !valid_name(name) {
                return Err(format!("tier {name:?}: name must be lowercase letters, digits and '-'"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("tier {name:?}: name used by more than one tier"));
            }
            if tier.label.is_empty() {
                if i > 0 {
                    return Err(format!("tier {name:?}: label is required (only the first tier may have none)"));
                }
            } else if !labels.insert(tier.label.as_str()) {
                return Err(format!("tier {name:?}: label {:?} used by more than one tier", tier.label));
            }
            if i == 0 {
                if tier.data_shards.is_some() || tier.parity_shards.is_some() {
                    return Err(format!(
                        "tier {name:?}: data_shards and parity_shards must be unset on the first tier (it uses the data path's code)"
                    ));
                }
                if tier.compression != Compression::None {
                    return Err(format!("tier {name:?}: compression must be none on the first tier"));
                }
            } else {
                let data = tier.data_shards.ok_or_else(|| format!("tier {name:?}: data_shards is required"))?;
                let parity = tier.parity_shards.ok_or_else(|| format!("tier {name:?}: parity_shards is required"))?;
                if data < 1 {
                    return Err(format!("tier {name:?}: data_shards must be at least 1"));
                }
                if parity < 1 {
                    return Err(format!("tier {name:?}: parity_shards must be at least 1"));
                }
                if u16::from(data) + u16::from(parity) > 255 {
                    return Err(format!("tier {name:?}: data_shards + parity_shards must be at most 255"));
                }
            }
            match tier.demote_after {
                Some(_) if i == last => {
                    return Err(format!("tier {name:?}: demote_after must be unset on the last tier"));
                }
                Some(age) if age.is_zero() => {
                    return Err(format!("tier {name:?}: demote_after must be more than 0"));
                }
                None if i < last => {
                    return Err(format!("tier {name:?}: demote_after is required (every tier but the last)"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Index of the tier a block node with `labels` belongs to: the first tier (in
    /// order) whose non-empty label it carries, else 0.
    pub fn tier_of(&self, labels: &[String]) -> usize {
        self.tiers.iter().position(|t| !t.label.is_empty() && labels.contains(&t.label)).unwrap_or(0)
    }

    /// Index of the tier named `name`.
    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[tier]]
name = "hot"
demote_after = "30d"

[[tier]]
name = "warm"
label = "warm"
data_shards = 6
parity_shards = 3
demote_after = "90d"

[[tier]]
name = "cold"
label = "cold"
data_shards = 10
parity_shards = 4
compression = "zstd"
"#;

    const DAY: u64 = 86_400;

    fn good() -> TieringConfig {
        TieringConfig::from_toml(GOOD).unwrap()
    }

    /// `GOOD` with `from` replaced by `to` (which must occur), parsed.
    fn edited(from: &str, to: &str) -> Result<TieringConfig, String> {
        assert!(GOOD.contains(from), "{from:?} not in the example");
        TieringConfig::from_toml(&GOOD.replacen(from, to, 1))
    }

    fn refused(from: &str, to: &str, words: &[&str]) {
        let err = edited(from, to).expect_err(&format!("{from:?} -> {to:?} was accepted"));
        for w in words {
            assert!(err.contains(w), "{err:?} does not mention {w:?}");
        }
    }

    #[test]
    fn three_tier_example_parses() {
        let c = good();
        let names: Vec<&str> = c.tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["hot", "warm", "cold"]);
        assert_eq!(c.tiers[0].label, "");
        assert_eq!((c.tiers[0].data_shards, c.tiers[0].parity_shards), (None, None));
        assert_eq!(c.tiers[0].compression, Compression::None);
        assert_eq!(c.tiers[0].demote_after, Some(Duration::from_secs(30 * DAY)));
        assert_eq!(c.tiers[1].demote_after, Some(Duration::from_secs(90 * DAY)));
        assert_eq!((c.tiers[1].data_shards, c.tiers[1].parity_shards), (Some(6), Some(3)));
        assert_eq!(c.tiers[1].compression, Compression::None);
        let cold = &c.tiers[2];
        assert_eq!((cold.label.as_str(), cold.data_shards, cold.parity_shards), ("cold", Some(10), Some(4)));
        assert_eq!(cold.compression, Compression::Zstd);
        assert_eq!(cold.demote_after, None);
        assert_eq!(c.tier_index("warm"), Some(1));
        assert_eq!(c.tier_index("lukewarm"), None);
    }

    #[test]
    fn other_duration_spellings() {
        let c = edited("\"30d\"", "\"2s\"").unwrap();
        assert_eq!(c.tiers[0].demote_after, Some(Duration::from_secs(2)));
        let c = edited("\"90d\"", "\"90days\"").unwrap();
        assert_eq!(c.tiers[1].demote_after, Some(Duration::from_secs(90 * DAY)));
        refused("\"30d\"", "\"soon\"", &["demote_after"]);
        refused("\"30d\"", "30", &["demote_after"]);
    }

    #[test]
    fn round_trips_through_json_and_toml() {
        let c = good();
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(serde_json::from_slice::<TieringConfig>(&json).unwrap(), c);
        let text = toml::to_string(&c).unwrap();
        assert_eq!(TieringConfig::from_toml(&text).unwrap(), c);
    }

    #[test]
    fn tier_of_picks_the_first_matching_label_else_the_first_tier() {
        let c = good();
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(c.tier_of(&labels(&[])), 0);
        assert_eq!(c.tier_of(&labels(&["ssd"])), 0);
        assert_eq!(c.tier_of(&labels(&["cold"])), 2);
        assert_eq!(c.tier_of(&labels(&["cold", "warm"])), 1);
        // An empty label never matches a tier without one.
        assert_eq!(c.tier_of(&labels(&[""])), 0);
        let c = edited("name = \"hot\"", "name = \"hot\"\nlabel = \"ssd\"").unwrap();
        assert_eq!(c.tier_of(&labels(&["ssd"])), 0);
        assert_eq!(c.tier_of(&labels(&["x", "cold"])), 2);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        refused("compression = \"zstd\"", "compression = \"zstd\"\nreplicas = 3", &["replicas"]);
        let err = TieringConfig::from_toml(&format!("retention = \"1y\"\n{GOOD}")).unwrap_err();
        assert!(err.contains("retention"), "{err}");
        refused("\"zstd\"", "\"lz4\"", &["lz4"]);
    }

    #[test]
    fn tier_count_and_names() {
        let err = TieringConfig::from_toml("[[tier]]\nname = \"hot\"\n").unwrap_err();
        assert!(err.contains("at least 2 tiers"), "{err}");
        let err = TieringConfig::from_toml("tier = []\n").unwrap_err();
        assert!(err.contains("at least 2 tiers"), "{err}");
        refused("name = \"warm\"", "name = \"\"", &["tier 2", "name"]);
        refused("name = \"warm\"", "name = \"Warm\"", &["\"Warm\"", "name"]);
        refused("name = \"warm\"", "name = \"warm tier\"", &["\"warm tier\"", "name"]);
        refused("name = \"warm\"", "name = \"hot\"", &["\"hot\"", "more than one"]);
        assert!(edited("name = \"warm\"", "name = \"warm-2\"").is_ok());
    }

    #[test]
    fn labels() {
        refused("label = \"warm\"", "label = \"\"", &["\"warm\"", "label"]);
        refused("label = \"warm\"\n", "", &["\"warm\"", "label"]);
        refused("label = \"warm\"", "label = \"cold\"", &["\"cold\"", "label", "more than one"]);
        refused("name = \"hot\"", "name = \"hot\"\nlabel = \"cold\"", &["label", "more than one"]);
        assert!(edited("name = \"hot\"", "name = \"hot\"\nlabel = \"ssd\"").is_ok());
    }

    #[test]
    fn codes() {
        let hot = "name = \"hot\"";
        refused(hot, "name = \"hot\"\ndata_shards = 4", &["\"hot\"", "data_shards", "first tier"]);
        refused(hot, "name = \"hot\"\nparity_shards = 2", &["\"hot\"", "parity_shards", "first tier"]);
        refused("data_shards = 6\n", "", &["\"warm\"", "data_shards", "required"]);
        refused("parity_shards = 3\n", "", &["\"warm\"", "parity_shards", "required"]);
        refused("data_shards = 6", "data_shards = 0", &["\"warm\"", "data_shards", "at least 1"]);
        refused("parity_shards = 3", "parity_shards = 0", &["\"warm\"", "parity_shards", "at least 1"]);
        refused("data_shards = 10", "data_shards = 252", &["\"cold\"", "at most 255"]);
        assert!(edited("data_shards = 10", "data_shards = 251").is_ok());
        refused("data_shards = 10", "data_shards = 256", &["data_shards"]);
    }

    #[test]
    fn compression() {
        refused("name = \"hot\"", "name = \"hot\"\ncompression = \"zstd\"", &["\"hot\"", "compression", "first tier"]);
        assert!(edited("parity_shards = 3", "parity_shards = 3\ncompression = \"zstd\"").is_ok());
        assert!(edited("compression = \"zstd\"", "compression = \"none\"").is_ok());
    }

    #[test]
    fn demote_after() {
        refused("demote_after = \"90d\"\n", "", &["\"warm\"", "demote_after", "required"]);
        refused("demote_after = \"30d\"\n", "", &["\"hot\"", "demote_after", "required"]);
        refused("demote_after = \"30d\"", "demote_after = \"0s\"", &["\"hot\"", "demote_after", "more than 0"]);
        refused(
            "compression = \"zstd\"",
            "compression = \"zstd\"\ndemote_after = \"1y\"",
            &["\"cold\"", "demote_after", "last tier"],
        );
    }
}
