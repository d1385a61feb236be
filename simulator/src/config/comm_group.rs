//! Communicator groups (`--comm-group-configuration`): which ranks take part
//! in a collective whose Chakra node names a process group (`pg_name`).
//!
//! ASTRA-sim's form is a JSON object from group id to the ranks in it:
//!
//! ```json
//! {"1": [0, 1, 2, 3], "2": [4, 5, 6, 7]}
//! ```
//!
//! ASTRA-sim turns each key into an `int` with `stoi` and looks a node's group
//! up by `stoi(pg_name)`, so `"1"`, `"01"` and the `pg_name` `"1.0"` all mean
//! group 1. It also asserts that every id is greater than 0: files exported
//! from PyTorch that use group 0 abort it. Strata keeps the ids as written
//! ([`CommGroup::key`]) together with their `stoi` value ([`CommGroup::id`])
//! and leaves the decision about id 0 to the simulator.

use std::path::Path;

use serde_json::Value;

use super::error::{ConfigError, Result};
use super::network::NetworkConfig;
use super::reader::{describe, parse_json_unique, quote};
use super::{format_for, read_text, ConfigFormat, Origin};

/// One communicator group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommGroup {
    /// The id exactly as written in the file.
    pub key: String,
    /// The id as ASTRA-sim's `stoi` reads it (leading blanks and sign, then
    /// digits; the rest ignored); `None` if the key does not start with a
    /// number, which would abort ASTRA-sim.
    pub id: Option<i64>,
    /// The ranks in the group, in file order; non-empty, no rank twice.
    pub ranks: Vec<u32>,
}

/// Every communicator group of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct CommGroups {
    groups: Vec<CommGroup>,
    origin: Origin,
}

impl CommGroups {
    /// Reads ASTRA-sim's communicator group JSON (`.json`).
    pub fn load(path: impl AsRef<Path>) -> Result<CommGroups> {
        let path = path.as_ref();
        format_for(
            path,
            "communicator group config",
            &[ConfigFormat::AstraJson],
            ".json (ASTRA-sim communicator groups)",
        )?;
        let text = read_text(path)?;
        CommGroups::from_json_str(&text, path)
    }

    /// Parses ASTRA-sim's communicator group JSON; `path` is used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<CommGroups> {
        let doc = parse_json_unique(text, path, "group id")?;
        let Value::Object(map) = &doc else {
            return Err(ConfigError::invalid(
                path,
                "(top level)",
                "a JSON object from group id to a list of ranks, such as {\"1\": [0, 1]}",
                describe(&doc),
            ));
        };
        let mut groups: Vec<CommGroup> = Vec::with_capacity(map.len());
        for (key, value) in map {
            let Value::Array(items) = value else {
                return Err(ConfigError::invalid(path, key, "a list of ranks", describe(value)));
            };
            if items.is_empty() {
                return Err(ConfigError::invalid(path, key, "a non-empty list of ranks", "an empty list"));
            }
            let mut ranks = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let rank = item.as_u64().filter(|r| *r <= i32::MAX as u64).ok_or_else(|| {
                    ConfigError::invalid(path, format!("{key}[{i}]"), "a rank: a whole number from 0", describe(item))
                })?;
                ranks.push(rank as u32);
            }
            let mut sorted = ranks.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(ConfigError::invalid(
                    path,
                    key,
                    "each rank at most once in a group",
                    format!("rank {} more than once", w[0]),
                ));
            }
            let id = stoi(key);
            if id.is_none() {
                tracing::warn!(
                    "{}: communicator group id {} is not a number; ASTRA-sim would abort on it (stoi)",
                    path.display(),
                    quote(key)
                );
            }
            if let Some(other) = groups.iter().find(|g| g.id.is_some() && g.id == id) {
                tracing::warn!(
                    "{}: communicator group ids {} and {} are both group {} for ASTRA-sim",
                    path.display(),
                    quote(&other.key),
                    quote(key),
                    id.unwrap_or_default()
                );
            }
            groups.push(CommGroup { key: key.clone(), id, ranks });
        }
        Ok(CommGroups { groups, origin: Origin::new(path, ConfigFormat::AstraJson) })
    }

    /// The ranks of the group a node's `pg_name` names: the group whose id is
    /// written exactly as `pg_name`, or else the first group whose `stoi` id
    /// equals `stoi(pg_name)` (ASTRA-sim's lookup).
    pub fn get(&self, pg_name: &str) -> Option<&[u32]> {
        self.group(pg_name).map(|g| g.ranks.as_slice())
    }

    /// The group a `pg_name` names (see [`CommGroups::get`]).
    pub fn group(&self, pg_name: &str) -> Option<&CommGroup> {
        if let Some(g) = self.groups.iter().find(|g| g.key == pg_name) {
            return Some(g);
        }
        let id = stoi(pg_name)?;
        self.groups.iter().find(|g| g.id == Some(id))
    }

    /// Every group, in file order.
    pub fn groups(&self) -> &[CommGroup] {
        &self.groups
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when the file lists no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Where these groups were read from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Checks that every rank exists in `network`.
    pub fn check_against_network(&self, network: &NetworkConfig) -> Result<()> {
        let total = network.total_npus();
        for g in &self.groups {
            if let Some((i, r)) = g.ranks.iter().enumerate().find(|(_, r)| **r >= total) {
                return Err(ConfigError::invalid(
                    &self.origin.path,
                    format!("{}[{i}]", g.key),
                    format!("a rank below {total}, the number of NPUs of {}", network.origin().path.display()),
                    r.to_string(),
                ));
            }
        }
        Ok(())
    }
}

/// C++ `stoi`: optional leading blanks, an optional sign, at least one digit;
/// anything after the digits is ignored. `None` where `stoi` would throw.
pub(crate) fn stoi(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return None;
    }
    let value: i64 = digits[..end].parse().ok()?;
    if value > i64::from(i32::MAX) + i64::from(negative) {
        return None; // stoi throws out_of_range
    }
    Some(if negative { -value } else { value })
}
