//! The per-call log: one JSON line per data-port call, to stdout or a file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use parking_lot::Mutex;
use serde_json::Value;

pub struct CallLog {
    out: Mutex<Box<dyn Write + Send>>,
}

impl CallLog {
    pub fn stdout() -> CallLog {
        CallLog { out: Mutex::new(Box::new(std::io::stdout())) }
    }

    /// Appends to a file (created if missing).
    pub fn file(path: &Path) -> Result<CallLog, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("--log {}: {e}", path.display()))?;
        Ok(CallLog { out: Mutex::new(Box::new(file)) })
    }

    /// Writes one line and flushes it; a log that cannot be written is not a reason to fail a call.
    pub fn line(&self, value: &Value) {
        let mut text = value.to_string();
        text.push('\n');
        let mut out = self.out.lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}
