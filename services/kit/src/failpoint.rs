//! Crash points for tests: with `FERRY_FAILPOINT=<name>` in its environment a service stops dead
//! at the named point (`abort`, no cleanup, like a SIGKILL), so a test can cut a protocol at the
//! one moment a random kill rarely hits. Without the variable nothing happens. The names are
//! listed here, so tests and services agree on them.

/// Whether the process is to crash at `name`.
pub fn armed(name: &str) -> bool {
    std::env::var("FERRY_FAILPOINT").is_ok_and(|v| v == name)
}

/// Crashes here if armed at `name`.
pub fn crash_if_armed(name: &str) {
    if armed(name) {
        eprintln!("failpoint {name}: crashing as FERRY_FAILPOINT asks");
        std::process::abort();
    }
}

/// Sink: after the first part of a fanned-out group committed, before the others do.
pub const FAN_OUT_PARTLY_COMMITTED: &str = "sink-fan-out-partly-committed";

/// Dispatcher: after a part of a split source transaction other than its last was published
/// (and acknowledged), before the next part is.
pub const DISPATCH_MID_TRANSACTION: &str = "dispatcher-mid-transaction";
