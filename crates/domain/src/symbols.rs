//! Run ids and the reserved namespace synthetic symbols live in (`pipeline.md` §7.2 rule 2).
//!
//! `ZZT2E-<RUN>-<ALIAS>`: valid for Jangar's pattern `^[A-Z0-9._:-]{1,32}$`, and impossible to
//! confuse with a real ticker: US equity and Alpaca symbols never contain `-`, and none starts
//! with `ZZT2E`.

use std::hash::{BuildHasher, Hasher};

/// The prefix every synthetic symbol starts with.
pub const RESERVED_PREFIX: &str = "ZZT2E-";

/// The trading universe (`pipeline.md` §7.1): never written to by the validator.
pub const TRADING_UNIVERSE: &[&str] = &[
    "NVDA", "AVGO", "AMD", "MU", "MRVL", "CRDO", "COHR", "LITE", "SNDK", "WDC",
];

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A short, unique id for one run: 8 Crockford base-32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RunId(String);

impl RunId {
    /// Clock and per-process random state, so two runs started in the same millisecond differ.
    pub fn generate() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        let mut bits = h.finish();
        let id = (0..8)
            .map(|_| {
                let c = ALPHABET[(bits & 31) as usize] as char;
                bits >>= 5;
                c
            })
            .collect();
        RunId(id)
    }

    pub fn from_string(id: &str) -> Option<Self> {
        let ok = (1..=10).contains(&id.len()) && id.bytes().all(|b| ALPHABET.contains(&b));
        ok.then(|| RunId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The synthetic symbol for a scenario alias in a run.
pub fn synthetic(run: &RunId, alias: &str) -> String {
    format!("{RESERVED_PREFIX}{run}-{alias}")
}

/// True for symbols the validator may publish: reserved namespace, Jangar-valid.
pub fn is_synthetic(symbol: &str) -> bool {
    symbol.starts_with(RESERVED_PREFIX)
        && symbol.len() <= 32
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"._:-".contains(&b))
        && !TRADING_UNIVERSE.contains(&symbol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_symbols_are_reserved_and_valid_for_jangar() {
        let run = RunId::generate();
        assert_eq!(run.as_str().len(), 8);
        let s = synthetic(&run, "ABCDEFGH");
        assert!(s.len() <= 32, "{s}");
        assert!(is_synthetic(&s), "{s}");
        assert!(!is_synthetic("NVDA"));
        assert!(!is_synthetic("zzt2e-lower"));
        assert!(!is_synthetic("ZZT2E-A/B"));
    }

    #[test]
    fn run_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..100).map(|_| RunId::generate()).collect();
        assert_eq!(ids.len(), 100);
        assert!(RunId::from_string("K7Q3M9AB").is_some());
        assert!(RunId::from_string("bad id").is_none());
    }
}
