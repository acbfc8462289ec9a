//! Forwarder JSON envelopes (pipeline.md §1.2, §1.4).
