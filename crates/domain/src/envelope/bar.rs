//! The forwarder's 1-minute bars (`bars` and `updatedBars` on `torghut[.sim].bars.1m.v1`,
//! pipeline.md §1.4 end, §4.7): written as the forwarder writes them, read as the TA job reads
//! them (JOB `ParseMicroBarCompatFlatMap`).

use serde::{Deserialize, Deserializer, Serialize};

use super::kotlin::{kotlin_double, kotlin_long};
use super::RawInstant;

/// `channel` of a 1-minute bar.
pub const CHANNEL_BARS: &str = "bars";
/// `channel` of a correction of an earlier 1-minute bar (same minute).
pub const CHANNEL_UPDATED_BARS: &str = "updatedBars";

/// A 1-minute bar payload. Written in the Alpaca form the forwarder re-encodes
/// (`{t, o, h, l, c, v, n, vw}`); read in either form the job accepts: its own microbar form
/// first (`o,h,l,c,v,vwap,count,t`, the `vwap` key required even when `null`), then the Alpaca
/// form (`o,h,l,c,v,t` required, `vw` and `n` optional, `n` missing → count 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BarPayload {
    /// The minute's start (anchor START: the bar ends 60 s later).
    #[serde(rename = "t")]
    pub t: RawInstant,
    #[serde(rename = "o")]
    pub open: f64,
    #[serde(rename = "h")]
    pub high: f64,
    #[serde(rename = "l")]
    pub low: f64,
    #[serde(rename = "c")]
    pub close: f64,
    #[serde(rename = "v")]
    pub volume: f64,
    #[serde(rename = "n")]
    pub count: i64,
    #[serde(rename = "vw", skip_serializing_if = "Option::is_none")]
    pub vwap: Option<f64>,
}

/// A kotlinx `Double` that may be JSON `null`.
#[derive(Deserialize)]
struct KotlinDouble(#[serde(deserialize_with = "kotlin_double")] f64);

/// A kotlinx `Long` that may be JSON `null`.
#[derive(Deserialize)]
struct KotlinLong(#[serde(deserialize_with = "kotlin_long")] i64);

fn nullable_double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<KotlinDouble>::deserialize(d)?.map(|k| k.0))
}

fn nullable_long<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<KotlinLong>::deserialize(d)?.map(|k| k.0))
}

/// The job's own microbar payload (MODELS `MicroBarPayload`): every key required.
#[derive(Deserialize)]
struct MicrobarForm {
    #[serde(deserialize_with = "kotlin_double")]
    o: f64,
    #[serde(deserialize_with = "kotlin_double")]
    h: f64,
    #[serde(deserialize_with = "kotlin_double")]
    l: f64,
    #[serde(deserialize_with = "kotlin_double")]
    c: f64,
    #[serde(deserialize_with = "kotlin_double")]
    v: f64,
    /// Required, even when `null` (no `default`).
    #[serde(deserialize_with = "nullable_double")]
    vwap: Option<f64>,
    #[serde(deserialize_with = "kotlin_long")]
    count: i64,
    t: RawInstant,
}

/// Alpaca's bar (MODELS `AlpacaBar`): `vw` and `n` optional.
#[derive(Deserialize)]
struct AlpacaForm {
    #[serde(deserialize_with = "kotlin_double")]
    o: f64,
    #[serde(deserialize_with = "kotlin_double")]
    h: f64,
    #[serde(deserialize_with = "kotlin_double")]
    l: f64,
    #[serde(deserialize_with = "kotlin_double")]
    c: f64,
    #[serde(deserialize_with = "kotlin_double")]
    v: f64,
    #[serde(default, deserialize_with = "nullable_double")]
    vw: Option<f64>,
    #[serde(default, deserialize_with = "nullable_long")]
    n: Option<i64>,
    t: RawInstant,
}

impl<'de> Deserialize<'de> for BarPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        if let Ok(m) = MicrobarForm::deserialize(&value) {
            return Ok(BarPayload {
                t: m.t,
                open: m.o,
                high: m.h,
                low: m.l,
                close: m.c,
                volume: m.v,
                count: m.count,
                vwap: m.vwap,
            });
        }
        let a = AlpacaForm::deserialize(&value).map_err(|e| {
            serde::de::Error::custom(format!("neither a microbar nor an Alpaca bar payload: {e}"))
        })?;
        Ok(BarPayload {
            t: a.t,
            open: a.o,
            high: a.h,
            low: a.l,
            close: a.c,
            volume: a.v,
            count: a.n.unwrap_or(0),
            vwap: a.vw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: &str) -> Result<BarPayload, serde_json::Error> {
        serde_json::from_str(payload)
    }

    #[test]
    fn reads_the_alpaca_form_with_and_without_n() {
        let full = parse(
            r#"{"t":"2026-07-21T14:30:00Z","o":1,"h":2.5,"l":0.5,"c":"2","v":300,"n":7,"vw":1.7}"#,
        )
        .unwrap();
        assert_eq!((full.close, full.volume, full.count), (2.0, 300.0, 7));
        assert_eq!(full.vwap, Some(1.7));
        let bare = parse(r#"{"t":"2026-07-21T14:30:00Z","o":1,"h":2,"l":1,"c":2,"v":3}"#).unwrap();
        assert_eq!((bare.count, bare.vwap), (0, None));
    }

    #[test]
    fn reads_the_microbar_form_first() {
        let m = parse(
            r#"{"t":"2026-07-21T14:30:00Z","o":1,"h":2,"l":1,"c":2,"v":3,"vwap":null,"count":4,"n":9}"#,
        )
        .unwrap();
        assert_eq!((m.count, m.vwap), (4, None), "count from the microbar form");
    }

    #[test]
    fn refuses_what_the_job_drops() {
        for bad in [
            r#"{"t":"2026-07-21T14:30:00Z","o":1,"h":2,"l":1,"v":3}"#,
            r#"{"t":1784644200000,"o":1,"h":2,"l":1,"c":2,"v":3}"#,
            r#"{"t":"2026-07-21T14:30:00Z","o":1,"h":2,"l":1,"c":null,"v":3}"#,
            r#"{"t":"2026-07-21T14:30:00Z","o":1,"h":2,"l":1,"c":2,"v":3,"n":1.5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_the_interface_keys_in_order() {
        let p = BarPayload {
            t: RawInstant::parse("2026-07-21T14:30:00Z").unwrap(),
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 100.0,
            count: 3,
            vwap: Some(1.25),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"t":"2026-07-21T14:30:00Z","o":1.0,"h":2.0,"l":0.5,"c":1.5,"v":100.0,"n":3,"vw":1.25}"#
        );
    }
}
