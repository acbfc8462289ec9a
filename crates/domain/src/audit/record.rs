//! A record read back from a topic: where it sits and what the job reads from it.

/// One record of a chosen symbol: where it sits on the topic and what the job reads from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record<T> {
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (the forwarder's produce time, or the broker's append time).
    pub ts_ms: i64,
    pub value: T,
}
