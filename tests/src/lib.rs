//! End-to-end scenarios live in `tests/*.rs`; this crate has no library code.
