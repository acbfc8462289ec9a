//! What publishing a scenario produced: each message's acknowledgement, or its fate when none
//! came. Kept as evidence in the report (`deliveries`, `unconfirmed`).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Trades,
    Quotes,
    /// The forwarder's 1-minute bars (`bars` and `updatedBars`).
    #[serde(rename = "bars1m")]
    Bars1m,
}

/// One acknowledged message.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub index: usize,
    pub channel: Channel,
    pub symbol: String,
    pub partition: i32,
    pub offset: i64,
    /// Wall clock when the broker acknowledged the write (acks=all).
    #[serde(with = "time::serde::rfc3339")]
    pub acked_at: time::OffsetDateTime,
}

/// A message sent but never acknowledged. Kafka's delivery is at least once: the broker may
/// have written it all the same, so the run looks for it on the topic before it calls its fate
/// unknown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unconfirmed {
    pub index: usize,
    pub channel: Channel,
    pub symbol: String,
    /// Why it has no acknowledgement.
    pub error: String,
    #[serde(flatten)]
    pub fate: Fate,
}

/// What became of a message that was never acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fate")]
pub enum Fate {
    /// Still in the producer's queue when the run gave up, and purged from it: never sent.
    NotSent,
    /// Found on the topic afterwards.
    Landed { partition: i32, offset: i64 },
    /// Sent, not acknowledged, and not found: the broker did not answer the read-back in time.
    Unknown,
}

/// How one message's acknowledgement ended.
pub enum Ack {
    Delivered(Delivery),
    /// Purged from the producer's queue before it was sent.
    Purged,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfirmed_message_names_its_fate() {
        let u = |fate| Unconfirmed {
            index: 3,
            channel: Channel::Trades,
            symbol: "ZZT2E-R-A".into(),
            error: "no acknowledgement within 6s".into(),
            fate,
        };
        let landed = serde_json::to_value(u(Fate::Landed {
            partition: 2,
            offset: 41,
        }))
        .unwrap();
        assert_eq!(landed["fate"], "landed");
        assert_eq!(landed["partition"], 2);
        assert_eq!(landed["offset"], 41);
        let unknown = serde_json::to_value(u(Fate::Unknown)).unwrap();
        assert_eq!(unknown["fate"], "unknown");
        assert_eq!(unknown["symbol"], "ZZT2E-R-A");
        assert_eq!(
            serde_json::to_value(u(Fate::NotSent)).unwrap()["fate"],
            "not_sent"
        );
    }
}
