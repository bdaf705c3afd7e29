//! What the three ngx-ase modules share of nginx's side, written once: the directive
//! table's pieces and guarded entry points (`module`), the one directive callback that
//! runs each directive's safe setter (`directive`), directive arguments and messages
//! with file and line (`conf`), complex values with variables (`complex_value`), nginx's
//! value conventions and time syntax (`values`, `time`,
//! plain Rust) and the slot functions that bound them (`slots`), the
//! handle to the common module's channel table (`channel`), the panic guard (`panic`), log
//! macros and the rate limiter (`log`),
//! and what the request and response modules read of each other (`peer`, `headers`).
//! Each unsafe function is small and says what it assumes; the modules' logic stays in
//! safe Rust.

pub mod channel;
pub mod complex_value;
pub mod conf;
pub mod directive;
pub mod headers;
pub mod log;
pub mod module;
pub mod panic;
pub mod peer;
pub mod slots;
pub mod time;
pub mod values;
