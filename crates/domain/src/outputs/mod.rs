//! The TA job's Kafka outputs (`pipeline.md` §1.1, §1.3, §4.6, §6.1): the microbar and signal
//! records decoded into the rows the ClickHouse comparison uses, the status heartbeat, and how
//! the validator judges both.
//!
//! Pure: the bytes come from the Kafka adapter and the writer schemas of framed values from the
//! schema registry adapter; this module frames, decodes, maps, compares and diagnoses.

pub mod decode;
pub mod heartbeat;
pub mod judge;

pub use decode::{DecodeError, Frame, Output};
pub use heartbeat::{Heartbeat, HeartbeatRun, HeartbeatVerdict};
