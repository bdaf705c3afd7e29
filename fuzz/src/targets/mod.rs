//! One module per fuzz target.

pub mod answer;
pub mod directives;
pub mod payload;
pub mod report;
