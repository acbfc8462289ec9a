//! The session volume before a prefix-expired history, fitted to the `vwap_session` values the
//! run's rows show.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::Seeded;
use crate::model::{Columns, Microbar, RowKey, Signal};
use crate::oracle::SessionSums;

/// The session volume before this run that explains the observed `vwap_session` values.
///
/// With `r0` the newest stored `vwap_session` and `V` the unknown volume behind it, bar `k` of
/// this run must show `r_k = (r0·V + C_k) / (V + W_k)` (`C_k` = Σ c·v, `W_k` = Σ v over the run's
/// bars up to `k`), so `V = (C_k − r_k·W_k) / (r_k − r0)`. The row where `r` moved furthest from
/// `r0` fixes `V` (the best-conditioned one); every other row is then predicted exactly. `None`
/// when no row moved (any `V` explains them: all must equal `r0`).
pub fn fit_prior_volume(r0: f64, bars: &[(f64, f64)], observed: &[Option<f64>]) -> Option<Fit> {
    let (mut cv, mut w) = (0.0, 0.0);
    let mut best: Option<Fit> = None;
    let mut best_move = r0.abs() * 1e-12;
    for (k, (&(c, v), r)) in bars.iter().zip(observed).enumerate() {
        cv += c * v;
        w += v;
        let Some(r) = *r else { continue };
        let moved = (r - r0).abs();
        if moved > best_move {
            best_move = moved;
            best = Some(Fit {
                volume: (cv - r * w) / (r - r0),
                row: k,
            });
        }
    }
    best
}

/// A fitted prior session volume and the row that fixed it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Fit {
    pub volume: f64,
    pub row: usize,
}

/// The session sums a prefix-expired symbol is predicted with, and how they were found.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFit {
    pub session: SessionSums,
    pub prior_volume: Option<f64>,
    /// The bar whose `vwap_session` fixed the volume.
    pub fixed_by: Option<OffsetDateTime>,
    /// Why the stored values cannot continue the history, if they cannot.
    pub problem: Option<String>,
}

/// Fits the session volume before this run from the run's stored bars and signals of the
/// symbol (see [`fit_prior_volume`]). The run's bars are checked exactly on their own; here they
/// only carry `c·v` and `v`.
pub fn fit_session(seeded: &Seeded, bars: &[Microbar], signals: &[Signal]) -> SessionFit {
    let retained = seeded.seed.session;
    let Some(r0) = seeded.last_vwap_session else {
        return SessionFit {
            session: retained,
            prior_volume: None,
            fixed_by: None,
            problem: Some("no vwap_session is stored before this run to continue from".into()),
        };
    };
    let session: HashMap<RowKey, Option<f64>> = signals
        .iter()
        .filter(|s| s.symbol == seeded.symbol)
        .map(|s| (s.key(), s.vwap_session))
        .collect();
    let mut rows: Vec<(&Microbar, Option<f64>)> = bars
        .iter()
        .filter(|b| b.symbol == seeded.symbol)
        .map(|b| (b, session.get(&b.key()).copied().flatten()))
        .collect();
    // Emission order: the session sums accumulate bar by bar as the job emitted them, and a
    // late bar (an earlier end, a later seq) joins them when it is emitted.
    rows.sort_by_key(|(b, _)| b.seq);
    let cv: Vec<(f64, f64)> = rows.iter().map(|(b, _)| (b.c, b.v)).collect();
    let observed: Vec<Option<f64>> = rows.iter().map(|(_, r)| *r).collect();
    let session = |volume: f64| SessionSums {
        pv: r0 * volume,
        volume,
    };
    match fit_prior_volume(r0, &cv, &observed) {
        // Nothing moved: any volume explains that; the retained rows' is as good as any.
        None => SessionFit {
            session: session(retained.volume),
            prior_volume: None,
            fixed_by: None,
            problem: None,
        },
        Some(fit) if fit.volume.is_finite() && fit.volume > 0.0 => SessionFit {
            session: session(fit.volume),
            prior_volume: Some(fit.volume),
            fixed_by: Some(rows[fit.row].0.event_ts),
            problem: None,
        },
        Some(fit) => SessionFit {
            session: session(retained.volume),
            prior_volume: Some(fit.volume),
            fixed_by: Some(rows[fit.row].0.event_ts),
            problem: Some(format!(
                "vwap_session moved from {r0} to {} at {}: no positive earlier volume explains \
                 that (fitted {}), so it is not a session VWAP continuing the history",
                observed[fit.row].unwrap_or(f64::NAN),
                rows[fit.row].0.event_ts,
                fit.volume
            )),
        },
    }
}
