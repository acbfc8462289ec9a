//! The job's state epochs for a symbol, as its stored rows show them: a restart without state
//! (the simulation lane's deployment upgrades `stateless`) starts the symbol's seq at 1 again.

use time::OffsetDateTime;

use crate::model::Microbar;

/// One state epoch of the job for a symbol, as the stored rows show it: from a restart without
/// state (its seq-1 row) to the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    /// `ingest_ts` of its seq-1 row; `None`: it began before the rows read.
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Its rows among those read, in emission order.
    pub bars: Vec<Microbar>,
}

impl Epoch {
    pub fn since_or_epoch(&self) -> OffsetDateTime {
        self.since.unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.bars.iter().map(|b| b.seq).max()
    }

    /// The epoch's bar with this seq, if read.
    pub fn bar(&self, seq: u64) -> Option<&Microbar> {
        self.bars.iter().find(|b| b.seq == seq)
    }
}

/// Splits rows in emission order into epochs: each seq-1 row starts one.
pub fn epochs(bars: &[Microbar]) -> Vec<Epoch> {
    let mut epochs: Vec<Epoch> = Vec::new();
    for bar in bars {
        let starts = bar.seq == 1;
        match epochs.last_mut() {
            Some(e) if !starts => e.bars.push(bar.clone()),
            _ => {
                if let Some(previous) = epochs.last_mut() {
                    previous.until = Some(bar.ingest_ts);
                }
                epochs.push(Epoch {
                    since: starts.then_some(bar.ingest_ts),
                    until: None,
                    bars: vec![bar.clone()],
                });
            }
        }
    }
    epochs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::bar;

    #[test]
    fn a_seq_1_row_starts_a_new_epoch() {
        let rows = vec![bar(10, 40, 0), bar(11, 41, 1), bar(5, 1, 2), bar(6, 2, 3)];
        let e = epochs(&rows);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].since, None);
        assert_eq!(e[0].until, Some(rows[2].ingest_ts));
        assert_eq!(e[0].last_seq(), Some(41));
        assert_eq!(e[1].since, Some(rows[2].ingest_ts));
        assert_eq!(e[1].bar(2).map(|b| b.event_ts), Some(rows[3].event_ts));
    }
}
