//! Unit tests of the engine over a scripted fake `Io` (see tests below).
