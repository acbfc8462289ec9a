//! The integration tests: one binary, so librdkafka, OpenSSL, fantoccini and the validator are
//! linked once, not once per test file. Two tiers, selected by module path:
//!
//! * `offline::` needs nothing but the built binaries (properties, golden data, hostile input,
//!   the deployment manifests): `cargo test --test it -- offline::`, before any stack is up;
//! * `stack::` talks to the local stack (`scripts/stack up`, `eval "$(scripts/stack env)"`):
//!   `cargo test --test it -- stack::`.
//!
//! Tests run on libtest's threads side by side: a test that publishes owns its lane (a private
//! stand-in TA job on scratch topics, or real-time pacing on the shared simulation lane, which
//! other runs cannot disturb), and drops the topics and databases it creates.

mod common;
mod offline;
mod stack;
