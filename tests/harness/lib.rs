//! Integration test harness (see tests/harness/README).
