//! The checks of a parsed scenario, each problem located at its line and column.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::raw::RawScenario;
use super::{Limits, LintError, Tolerance, MAX_EVENTS_CEILING, MAX_SPAN_CEILING};

pub(super) fn check_names(
    raw: &RawScenario,
    errors: &mut Vec<LintError>,
    at: &impl Fn(Option<Range<usize>>, String) -> LintError,
) {
    if raw.symbols.get_ref().is_empty() {
        errors.push(at(
            Some(raw.symbols.span()),
            "`symbols` must name at least one alias".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for alias in raw.symbols.get_ref() {
        let a = alias.get_ref();
        let valid = !a.is_empty()
            && a.len() <= 8
            && a.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid {
            errors.push(at(
                Some(alias.span()),
                format!("symbol alias {a:?} must be 1-8 characters of A-Z and 0-9"),
            ));
        }
        if !seen.insert(a.clone()) {
            errors.push(at(
                Some(alias.span()),
                format!("symbol alias {a:?} is declared twice"),
            ));
        }
    }
    for (table, cols) in &raw.ignore_columns {
        let schema = match table.as_str() {
            "ta_microbars" => crate::model::MICROBAR_COLUMNS,
            "ta_signals" => crate::model::SIGNAL_COLUMNS,
            _ => {
                let span = cols.first().map(Spanned::span);
                errors.push(at(
                    span,
                    format!("unknown table {table:?} in ignore_columns"),
                ));
                continue;
            }
        };
        for c in cols {
            if !schema.contains(&c.get_ref().as_str()) {
                errors.push(at(
                    Some(c.span()),
                    format!("{table} has no column {:?}", c.get_ref()),
                ));
            }
        }
    }
    for (column, tol) in &raw.tolerance.columns {
        let known = crate::model::MICROBAR_COLUMNS.contains(&column.as_str())
            || crate::model::SIGNAL_COLUMNS.contains(&column.as_str());
        if !known {
            errors.push(at(
                Some(tol.span()),
                format!("tolerance for unknown column {column:?}"),
            ));
        }
    }
    if let Some(d) = &raw.deadline_secs {
        if *d.get_ref() == 0 || *d.get_ref() > 3600 {
            errors.push(at(
                Some(d.span()),
                "deadline_secs must be between 1 and 3600".into(),
            ));
        }
    }
}

pub(super) fn check_tolerances(
    raw: &RawScenario,
    errors: &mut Vec<LintError>,
    at: &impl Fn(Option<Range<usize>>, String) -> LintError,
) {
    let valid = |t: &Tolerance| [t.rel, t.abs].iter().all(|v| v.is_finite() && *v >= 0.0);
    if raw.tolerance.default.as_ref().is_some_and(|t| !valid(t)) {
        errors.push(at(
            Some(raw.name.span()),
            "tolerance.default: rel and abs must be finite and not negative".into(),
        ));
    }
    for (column, tol) in &raw.tolerance.columns {
        if !valid(tol.get_ref()) {
            errors.push(at(
                Some(tol.span()),
                format!("tolerance for {column}: rel and abs must be finite and not negative"),
            ));
        }
    }
}

/// The span and the event count, from the parameters alone: every offset within the span
/// limit, the total within the event limit. Runs before anything is generated.
pub(super) fn check_extent(
    raw: &RawScenario,
    limits: &Limits,
    errors: &mut Vec<LintError>,
    at: &impl Fn(Option<Range<usize>>, String) -> LintError,
) {
    let max_ms = limits.max_span_ms();
    let too_late = |what: &str, ms: u64| {
        format!(
            "{what} {ms} ms is beyond the scenario span limit of {max_ms} ms ({}; raise it with \
             --max-span, at most {})",
            humantime::format_duration(limits.max_span),
            humantime::format_duration(MAX_SPAN_CEILING)
        )
    };
    for t in &raw.trades {
        let ms = *t.get_ref().at_ms.get_ref();
        if ms > max_ms {
            errors.push(at(Some(t.get_ref().at_ms.span()), too_late("at_ms", ms)));
        }
    }
    for q in &raw.quotes {
        let ms = *q.get_ref().at_ms.get_ref();
        if ms > max_ms {
            errors.push(at(Some(q.get_ref().at_ms.span()), too_late("at_ms", ms)));
        }
    }
    for b in &raw.bars {
        // An overflowing minute is the bar's own error (see `BarSpec::validate`).
        if let Some((_, ms)) = b.get_ref().offsets() {
            if ms > max_ms {
                errors.push(at(Some(b.span()), too_late("the bar's publish offset", ms)));
            }
        }
    }
    let mut total = (raw.trades.len() + raw.quotes.len() + raw.bars.len()) as u64;
    // Where the count first crosses the limit: the generator to look at.
    let mut crossing = None;
    for g in &raw.generators {
        if g.get_ref().validate().is_err() {
            continue;
        }
        let Some(extent) = g.get_ref().extent() else {
            errors.push(at(
                Some(g.span()),
                "the generator's offsets overflow: start_ms/at_ms is far beyond any span".into(),
            ));
            continue;
        };
        if extent.last_ms > max_ms {
            errors.push(at(
                Some(g.span()),
                too_late("the generator's last trade at", extent.last_ms),
            ));
        }
        total = total.saturating_add(extent.count);
        if total > limits.max_events && crossing.is_none() {
            crossing = Some(g.span());
        }
    }
    if total > limits.max_events {
        errors.push(at(
            crossing.or(Some(raw.name.span())),
            format!(
                "the scenario would publish {total} events, over the event limit of {} (raise \
                 it with --max-events, at most {MAX_EVENTS_CEILING})",
                limits.max_events
            ),
        ));
    }
}

/// Turns a byte span into 1-based line and column.
pub(super) fn locate(
    text: &str,
    path: &Path,
    span: Option<Range<usize>>,
    message: String,
) -> LintError {
    let offset = span.map_or(0, |s| s.start.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    LintError {
        path: path.display().to_string(),
        line,
        column,
        message,
    }
}
