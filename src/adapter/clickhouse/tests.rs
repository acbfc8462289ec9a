use super::*;

#[test]
fn parses_clickhouse_exception_text() {
    let body = "Code: 60. DB::Exception: Unknown table expression identifier 'nope' in scope \
                SELECT * FROM nope. (UNKNOWN_TABLE) (version 25.8.1.1)\n";
    let e = ServerError::parse(body).unwrap();
    assert_eq!(e.code, UNKNOWN_TABLE);
    assert_eq!(e.name.as_deref(), Some("UNKNOWN_TABLE"));
    assert!(
        e.message.starts_with("DB::Exception: Unknown table"),
        "{}",
        e.message
    );
}

#[test]
fn parses_exception_inside_client_wrapping() {
    let body = "bad response: Code: 516. DB::Exception: x: Authentication failed. \
                (AUTHENTICATION_FAILED)";
    let e = ServerError::parse(body).unwrap();
    assert_eq!(e.code, 516);
    assert_eq!(e.name.as_deref(), Some("AUTHENTICATION_FAILED"));
    assert_eq!(ServerError::parse("no code here"), None);
}
