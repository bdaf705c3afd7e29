//! The memcheck logs of an nginx run under valgrind (`NGX_ASE_WRAPPER="valgrind ..."`, see
//! `scripts/valgrind.sh`), judged by one rule set: no invalid read, write or free, nor a
//! system call given unaddressable memory, anywhere in nginx; no use of an uninitialised
//! value nor a definite leak whose stack goes through our modules (nginx's own are not ours
//! to fix); and every nginx process ended with memcheck's summary (one killed before it
//! could check its leaks is a finding too).

use std::fs;
use std::path::{Path, PathBuf};

/// Something memcheck found in one process's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    /// The error record as memcheck wrote it, without its `==PID==` prefixes.
    pub record: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    InvalidAccess,
    Uninitialised,
    DefiniteLeak,
    NoSummary,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::InvalidAccess => "invalid memory access",
            Kind::Uninitialised => "use of an uninitialised value through our modules",
            Kind::DefiniteLeak => "definite leak through our modules",
            Kind::NoSummary => "no memcheck summary (the process was killed or is still running)",
        }
    }
}

/// Markers of an access to memory that is not the program's, in memcheck's words.
const INVALID_ACCESS: [&str; 6] = [
    "Invalid read",
    "Invalid write",
    "Invalid free",
    "Mismatched free",
    "Source and destination overlap",
    "points to unaddressable",
];

/// Whether a stack goes through our code: the crates' symbols and the modules' file names
/// (`ngx_ase_common_module.so`, `ngx_http_ase_request_module.so`, `ngx-ase-*/src/...`).
fn through_our_modules(record: &str) -> bool {
    ["ngx_ase", "ngx_http_ase", "ngx-ase"].iter().any(|m| record.contains(m))
}

fn classify(record: &str) -> Option<Kind> {
    if INVALID_ACCESS.iter().any(|m| record.contains(m)) {
        Some(Kind::InvalidAccess)
    } else if record.contains("uninitialised") {
        Some(Kind::Uninitialised)
    } else if record.contains("are definitely lost") {
        Some(Kind::DefiniteLeak)
    } else {
        None
    }
}

/// A line that is only `==PID==` (memcheck's blank line between records).
fn is_separator(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("==") else { return false };
    let Some((pid, tail)) = rest.split_once("==") else { return false };
    !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && tail.trim().is_empty()
}

/// `==PID== text` → `text`.
fn strip_pid(line: &str) -> &str {
    line.strip_prefix("==").and_then(|rest| rest.split_once("== ").map(|(_, text)| text)).unwrap_or(line)
}

/// The findings in one memcheck log. A log of another program than nginx (a wrapper in
/// front of it) has none.
pub fn check_log(text: &str) -> Vec<Finding> {
    let command = text.lines().map(strip_pid).find_map(|l| l.strip_prefix("Command: "));
    let program = command.and_then(|c| c.split_whitespace().next()).and_then(|p| p.rsplit('/').next());
    if !program.is_some_and(|p| p.contains("nginx")) {
        return Vec::new();
    }
    let mut findings = Vec::new();
    let mut record: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("==0==")) {
        if !is_separator(line) {
            record.push(strip_pid(line));
            continue;
        }
        let text = record.join("\n");
        record.clear();
        let Some(kind) = classify(&text) else { continue };
        if kind == Kind::InvalidAccess || through_our_modules(&text) {
            findings.push(Finding { kind, record: text.trim().to_string() });
        }
    }
    if !text.contains("ERROR SUMMARY") {
        findings.push(Finding { kind: Kind::NoSummary, record: String::new() });
    }
    findings
}

/// The memcheck logs (`memcheck.PID.log`) in a directory.
pub fn logs_in(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    name.starts_with("memcheck.") && name.ends_with(".log")
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs
}

/// Every log's findings, as a report for a failing test; `None` when all are clean.
pub fn report(logs: &[PathBuf]) -> Option<String> {
    let mut out = String::new();
    for log in logs {
        let findings = check_log(&fs::read_to_string(log).unwrap_or_default());
        if findings.is_empty() {
            continue;
        }
        out.push_str(&format!("{}: {} finding(s)\n", log.display(), findings.len()));
        for f in findings.iter().take(5) {
            out.push_str(&format!("  {}\n", f.kind.describe()));
            for line in f.record.lines().filter(|l| !l.contains("UnknownInlinedFun")) {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    (!out.is_empty()).then_some(out)
}
