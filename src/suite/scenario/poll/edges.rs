//! What one answered key poll proves about the rows it missed and the rows it saw, by the
//! server's clock where it agrees with ours.

use time::OffsetDateTime;

/// A poll's two edges: nothing it missed was visible at `not_before`, and everything it saw was
/// by `by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edges {
    /// The server's clock as the query started (before it read any part) when that lies
    /// within the poll's round trip, i.e. when the two clocks agree; otherwise the send time.
    /// Under load most of a round trip is the wait before the query starts, which the
    /// server's clock leaves out of the bracket.
    pub not_before: OffsetDateTime,
    /// The server's clock as it executed the query (after it took the tables' parts) when the
    /// clocks agree as above; otherwise the answer time. That leaves the query's execution and
    /// the answer's way back out of the bracket.
    pub by: OffsetDateTime,
    /// Both edges came from the server's clock.
    pub by_server_clock: bool,
}

impl Edges {
    pub fn of(
        sent: OffsetDateTime,
        answered: OffsetDateTime,
        server_start: Option<OffsetDateTime>,
        server_executing: Option<OffsetDateTime>,
    ) -> Self {
        log_round_trip(sent, server_start, server_executing, answered);
        // A reading of the server's clock, when it lies within the poll's round trip.
        let within =
            |clock: Option<OffsetDateTime>| clock.filter(|c| (sent..=answered).contains(c));
        let (start, executing) = (within(server_start), within(server_executing));
        Self {
            not_before: start.unwrap_or(sent),
            by: executing.unwrap_or(answered),
            by_server_clock: start.is_some() && executing.is_some(),
        }
    }
}

/// Where a key poll's round trip went, by the server's clock (at debug): before the query
/// started, between its analysis and its execution, and after.
fn log_round_trip(
    sent: OffsetDateTime,
    server_start: Option<OffsetDateTime>,
    server_executing: Option<OffsetDateTime>,
    answered: OffsetDateTime,
) {
    let ms = |a: OffsetDateTime, b: OffsetDateTime| (b - a).whole_microseconds() as f64 / 1e3;
    tracing::debug!(
        round_trip_ms = ms(sent, answered),
        before_start_ms = server_start.map(|s| ms(sent, s)),
        start_to_executing_ms = server_start.zip(server_executing).map(|(s, e)| ms(s, e)),
        executing_to_answer_ms = server_executing.map(|e| ms(e, answered)),
        "key poll"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms)
    }

    #[test]
    fn a_poll_bounds_its_bracket_by_the_servers_clock_only_when_the_clocks_agree() {
        let (sent, answered) = (at(1_000), at(1_200));
        // Misses up to the server's start, sightings from its execution.
        let edges = Edges::of(sent, answered, Some(at(1_150)), Some(at(1_160)));
        assert_eq!(edges.not_before, at(1_150));
        assert_eq!(edges.by, at(1_160));
        assert!(edges.by_server_clock);
        // Without them, the send and answer times; a server clock outside the round trip is
        // skewed, and they stand too.
        for clock in [None, Some(at(1_300)), Some(at(900))] {
            let edges = Edges::of(sent, answered, clock, clock);
            assert_eq!(edges.not_before, sent);
            assert_eq!(edges.by, answered);
            assert!(!edges.by_server_clock);
        }
    }
}
