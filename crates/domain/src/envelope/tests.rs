use super::*;
use time::macros::datetime;

const EXAMPLE: &str = r#"{"ingestTs":"2026-07-21T14:30:00.131482Z","eventTs":"2026-07-21T14:30:00.123456789Z","feed":"iex","channel":"trades","symbol":"NVDA","seq":48213,"payload":{"S":"NVDA","i":52983525029461,"x":"V","p":172.35,"s":100.0,"c":["@"],"t":"2026-07-21T14:30:00.123456789Z","z":"C"},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#;

fn trade(json: &str) -> Result<Envelope<TradePayload>, EnvelopeError> {
    match parse_message(json)? {
        Message::Trade(t) => Ok(t),
        Message::Quote(_) => panic!("parsed as a quote"),
        Message::Bar(_) => panic!("parsed as a 1-minute bar"),
    }
}

#[test]
fn a_minute_bar_is_written_with_every_envelope_key_and_read_back() {
    let bar = MinuteBar {
        open: 10.0,
        high: 11.0,
        low: 9.5,
        close: 10.5,
        volume: 1200.0,
        count: 14,
        vwap: Some(10.25),
        updated: true,
    };
    let json = bar_message(
        "NVDA",
        datetime!(2026-07-21 14:30:00 UTC),
        bar,
        7,
        datetime!(2026-07-21 14:31:00.5 UTC),
    );
    assert_eq!(
        json,
        r#"{"ingestTs":"2026-07-21T14:31:00.500Z","eventTs":"2026-07-21T14:30:00Z","feed":"iex","channel":"updatedBars","symbol":"NVDA","seq":7,"payload":{"t":"2026-07-21T14:30:00Z","o":10.0,"h":11.0,"l":9.5,"c":10.5,"v":1200.0,"n":14,"vw":10.25},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#
    );
    let Ok(Message::Bar(env)) = parse_message(&json) else {
        panic!("not read as a bar")
    };
    assert_eq!(
        (env.seq, env.payload.close, env.payload.count),
        (7, 10.5, 14)
    );
    assert_eq!(env.channel, CHANNEL_UPDATED_BARS);
}

#[test]
fn the_contract_example_round_trips_byte_for_byte() {
    let env = trade(EXAMPLE).expect("parses");
    assert_eq!(env.payload.price, 172.35);
    assert_eq!(env.payload.size, 100.0);
    assert_eq!(env.payload.id, Some(52983525029461));
    assert_eq!(env.payload.conditions, Some(vec!["@".to_string()]));
    assert_eq!(env.event_ts.subsec_nanos(), 123_456_789);
    assert_eq!(env.to_json(), EXAMPLE);
}

#[test]
fn the_constructor_writes_the_forwarder_defaults() {
    let json = trade_message(
        "NVDA",
        datetime!(2026-07-21 14:30:00.123 UTC),
        172.35,
        100.0,
        7,
        datetime!(2026-07-21 14:30:00.131482 UTC),
    );
    assert_eq!(
        json,
        r#"{"ingestTs":"2026-07-21T14:30:00.131482Z","eventTs":"2026-07-21T14:30:00.123Z","feed":"iex","channel":"trades","symbol":"NVDA","seq":7,"payload":{"S":"NVDA","p":172.35,"s":100.0,"t":"2026-07-21T14:30:00.123Z"},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#
    );
    let quote = quote_message(
        "NVDA",
        datetime!(2026-07-21 14:30:00 UTC),
        172.3,
        200.0,
        172.4,
        300.5,
        8,
        datetime!(2026-07-21 14:30:00.5 UTC),
    );
    assert_eq!(
        quote,
        r#"{"ingestTs":"2026-07-21T14:30:00.500Z","eventTs":"2026-07-21T14:30:00Z","feed":"iex","channel":"quotes","symbol":"NVDA","seq":8,"payload":{"S":"NVDA","bp":172.3,"bs":200.0,"ap":172.4,"as":300.5,"t":"2026-07-21T14:30:00Z"},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#
    );
    assert!(matches!(parse_message(&quote), Ok(Message::Quote(_))));
}

#[test]
fn instants_print_like_java() {
    let cases = [
        (datetime!(2026-07-21 14:30:00 UTC), "2026-07-21T14:30:00Z"),
        (
            datetime!(2026-07-21 14:30:00.1 UTC),
            "2026-07-21T14:30:00.100Z",
        ),
        (
            datetime!(2026-07-21 14:30:00.12345 UTC),
            "2026-07-21T14:30:00.123450Z",
        ),
        (
            datetime!(2026-07-21 14:30:00.000000001 UTC),
            "2026-07-21T14:30:00.000000001Z",
        ),
        (
            datetime!(1969-12-31 23:59:59.5 UTC),
            "1969-12-31T23:59:59.500Z",
        ),
    ];
    for (t, text) in cases {
        assert_eq!(IsoInstant::from(t).to_string(), text);
        assert_eq!(text.parse::<IsoInstant>(), Ok(IsoInstant::from(t)));
    }
}

#[test]
fn instants_parse_like_instant_parse() {
    let base: IsoInstant = "2026-07-21T14:30:00Z".parse().expect("valid");
    assert_eq!("2026-07-21t14:30:00z".parse::<IsoInstant>(), Ok(base));
    assert_eq!("2026-07-21T16:30:00+02:00".parse::<IsoInstant>(), Ok(base));
    assert_eq!("2026-07-21T10:30:00-04:00".parse::<IsoInstant>(), Ok(base));
    assert_eq!(base.unix_millis(), 1_784_644_200_000);
    let neg: IsoInstant = "1969-12-31T23:59:59.999Z".parse().expect("valid");
    assert_eq!((neg.unix_seconds(), neg.unix_millis()), (-1, -1));
    // Java's rollover forms: 24:00 is the next day's midnight, a leap second the one before.
    let midnight: IsoInstant = "2026-07-22T00:00:00Z".parse().expect("valid");
    assert_eq!("2026-07-21T24:00:00Z".parse::<IsoInstant>(), Ok(midnight));
    assert_eq!(
        "2026-07-21T24:00:00.000z".parse::<IsoInstant>(),
        Ok(midnight)
    );
    // Judged on the local time of day, before the offset applies.
    assert_eq!(
        "2026-07-21T23:59:60.25+02:00".parse::<IsoInstant>(),
        "2026-07-21T21:59:59.25Z".parse::<IsoInstant>()
    );
    assert_eq!("2026-07-21T14:30:00.Z".parse::<IsoInstant>(), Ok(base));
    for bad in [
        "2026-07-21T14:30Z",
        "2026-07-21 14:30:00Z",
        "2026-07-21T14:30:00",
        "2026-02-30T14:30:00Z",
        "2026-02-30T24:00:00Z",
        "2026-07-21T14:30:00.1234567891Z",
        "2026-07-21T24:00:00.001Z",
        "2026-07-21T24:01:00Z",
        "2026-07-21T23:58:60Z",
        "2026-07-22T01:59:60+02:00",
        "2026-07-21T23:59:61Z",
        "1784644200000",
        "2026-07-21T14:30:00Zjunk",
    ] {
        let err = bad.parse::<IsoInstant>().expect_err(bad);
        assert!(err.to_string().contains(bad), "{err}");
    }
}

/// `fixtures/envelopes/kotlinx.toml`, shared with the stand-in TA job's parser.
#[derive(Deserialize)]
struct Cases {
    base: String,
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    replace: (String, String),
    accept: bool,
    is_final: Option<bool>,
    event_ms: Option<i64>,
    t_ns: Option<i128>,
}

#[test]
fn accepts_and_rejects_the_envelopes_the_job_does() {
    let cases: Cases = toml::from_str(include_str!("../../../../fixtures/envelopes/kotlinx.toml"))
        .expect("fixture");
    assert!(cases.case.iter().filter(|c| !c.accept).count() >= 20);
    for case in &cases.case {
        let (from, to) = &case.replace;
        assert!(
            cases.base.contains(from.as_str()),
            "{}: no {from}",
            case.name
        );
        let message = cases.base.replacen(from.as_str(), to, 1);
        let parsed = trade(&message);
        if !case.accept {
            assert!(parsed.is_err(), "{} was accepted", case.name);
            continue;
        }
        let env = parsed.unwrap_or_else(|e| panic!("{} was rejected: {e}", case.name));
        if let Some(is_final) = case.is_final {
            assert_eq!(env.is_final, is_final, "{}", case.name);
        }
        if let Some(ms) = case.event_ms {
            assert_eq!(env.event_ts.unix_millis(), ms, "{}", case.name);
        }
        if let Some(ns) = case.t_ns {
            assert_eq!(env.payload.t.instant().unix_nanos(), ns, "{}", case.name);
        }
    }
}

#[test]
fn boolean_literals_are_lower_cased_only_outside_strings() {
    let text = r#"{"a":TRUE,"b":"FALSE \" TRUE","c":[False],"d":TRUEX,"e":true}"#;
    assert_eq!(
        lower_case_boolean_literals(text),
        r#"{"a":true,"b":"FALSE \" TRUE","c":[false],"d":TRUEX,"e":true}"#
    );
    assert!(matches!(
        lower_case_boolean_literals(EXAMPLE),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn market_sessions_follow_new_york_wall_clock_with_dst() {
    let at = |t: OffsetDateTime| market_session(IsoInstant::from(t));
    // Summer (EDT, UTC-4).
    assert_eq!(at(datetime!(2026-07-21 07:59:59 UTC)), "overnight");
    assert_eq!(at(datetime!(2026-07-21 08:00:00 UTC)), "pre");
    assert_eq!(at(datetime!(2026-07-21 13:30:00 UTC)), "regular");
    assert_eq!(at(datetime!(2026-07-21 20:00:00 UTC)), "post");
    assert_eq!(at(datetime!(2026-07-22 00:00:00 UTC)), "overnight");
    // Winter (EST, UTC-5): 13:30 UTC is 08:30 local.
    assert_eq!(at(datetime!(2026-01-05 13:30:00 UTC)), "pre");
    assert_eq!(at(datetime!(2026-01-05 14:30:00 UTC)), "regular");
    // 2026: DST from Sunday 8 March 07:00 UTC to Sunday 1 November 06:00 UTC.
    assert_eq!(at(datetime!(2026-03-08 06:59:59 UTC)), "overnight"); // 01:59:59 EST
    assert_eq!(at(datetime!(2026-03-08 13:30:00 UTC)), "regular"); // 09:30 EDT
    assert_eq!(at(datetime!(2026-11-01 13:30:00 UTC)), "pre"); // 08:30 EST
    assert_eq!(at(datetime!(2026-10-31 13:30:00 UTC)), "regular"); // 09:30 EDT
    assert_eq!(at(datetime!(2026-11-01 05:59:59 UTC)), "overnight");
}

#[test]
fn parsing_follows_the_ta_job_rules() {
    let with = |from: &str, to: &str| EXAMPLE.replacen(from, to, 1);
    // Unknown keys are ignored; optional envelope keys may be absent.
    let minimal = r#"{"ingestTs":"2026-07-21T14:30:00Z","eventTs":"2026-07-21T14:30:00Z","feed":"x","channel":"trades","symbol":"BTC/USD","seq":1,"payload":{"p":1.5,"s":2,"t":"2026-07-21T14:30:00Z","extra":{}},"more":[1]}"#;
    let env = trade(minimal).expect("minimal payload is enough");
    assert_eq!(
        (env.is_final, env.source.as_str(), env.version),
        (true, "ws", 1)
    );
    assert_eq!(env.payload.size, 2.0);
    // Quoted numbers are accepted, like kotlinx.
    assert_eq!(
        trade(&with("48213", "\"48213\"")).expect("quoted seq").seq,
        48213
    );
    // Undeclared payload keys with odd types do not fail the record.
    assert_eq!(
        trade(&with("\"x\":\"V\"", "\"x\":5"))
            .expect("lenient")
            .payload
            .exchange,
        None
    );
    for (from, to, needle) in [
        ("\"isFinal\":true", "\"isFinal\":null", "boolean"),
        ("\"seq\":48213", "\"seq\":null", "null, expected an integer"),
        ("\"seq\":48213", "\"seq\":1.5", "not an integer"),
        ("\"p\":172.35", "\"p\":\"abc\"", "not a number"),
        ("\"seq\":48213,", "", "missing field `seq`"),
        (
            "\"eventTs\":\"2026-07-21T14:30:00.123456789Z\",",
            "",
            "missing field `eventTs`",
        ),
        ("\"p\":172.35,", "", "missing field `p`"),
        (
            "\"t\":\"2026-07-21T14:30:00.123456789Z\"",
            "\"t\":1784644200000",
            "string",
        ),
        (
            "\"t\":\"2026-07-21T14:30:00.123456789Z\"",
            "\"t\":\"yesterday\"",
            "yesterday",
        ),
        ("\"feed\":\"iex\"", "\"feed\":null", "string"),
        (
            "\"window\":null",
            "\"window\":{\"size\":\"PT1S\"}",
            "missing field `step`",
        ),
        ("\"accountLabel\":null", "\"accountLabel\":5", "string"),
    ] {
        let err = trade(&with(from, to)).expect_err(to).to_string();
        assert!(err.contains(needle), "{to}: {err}");
    }
    assert!(matches!(
        parse_message("[1]"),
        Err(EnvelopeError::NotAnObject(_))
    ));
    assert!(matches!(parse_message("{"), Err(EnvelopeError::Json(_))));
    // A trade payload on the bars channel is read as a bar, and is not one.
    let bars = with("\"channel\":\"trades\"", "\"channel\":\"bars\"");
    assert!(matches!(parse_message(&bars), Err(EnvelopeError::Bar(_))));
    // Unknown channel: the payload shape decides.
    let odd = with("\"channel\":\"trades\"", "\"channel\":\"t\"");
    assert!(matches!(parse_message(&odd), Ok(Message::Trade(_))));
}
