//! The rules by which the harness judges memcheck's logs (`tests/harness/memcheck.rs`),
//! on logs shaped as valgrind 3.19 writes them. No nginx runs here.

use ngx_ase_tests::memcheck::{check_log, Kind};

const HEAD: &str = "==41== Memcheck, a memory error detector
==41== Command: /repo/build/vendored/sbin/nginx -p /tmp/ngx-ase-test-x -c conf/nginx.conf -g daemon\\ off;
==41== Parent PID: 40
==41== \n";

const TAIL: &str = "==41== 
==41== LEAK SUMMARY:
==41==    definitely lost: 8 bytes in 1 blocks
==41==      possibly lost: 128 bytes in 1 blocks
==41== 
==41== ERROR SUMMARY: 2 errors from 2 contexts (suppressed: 0 from 0)
";

fn log(records: &[&str]) -> String {
    let mut s = HEAD.to_string();
    for r in records {
        s.push_str(r);
        s.push_str("==41== \n");
    }
    s.push_str(TAIL);
    s
}

fn kinds(text: &str) -> Vec<Kind> {
    check_log(text).into_iter().map(|f| f.kind).collect()
}

const NGINX_LEAK: &str = "==41== 8 bytes in 1 blocks are definitely lost in loss record 1 of 25
==41==    at 0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
==41==    by 0x1572FC: ngx_alloc (ngx_alloc.c:22)
==41==    by 0x13140A: ngx_set_environment (nginx.c:591)
";

const OUR_LEAK: &str = "==41== 64 bytes in 1 blocks are definitely lost in loss record 2 of 25
==41==    at 0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
==41==    by 0x55321BD: ngx_ase_common::net::pool::grow (pool.rs:88)
==41==    by 0x15C1D5: ngx_worker_process_cycle (ngx_process_cycle.c:706)
";

const POSSIBLE_LEAK_OURS: &str = "==41== 128 bytes in 1 blocks are possibly lost in loss record 3 of 25
==41==    at 0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
==41==    by 0x55321BD: ngx_ase_common::worker::start (worker.rs:12)
";

const INVALID_READ_IN_NGINX: &str = "==41== Invalid read of size 8
==41==    at 0x17B921: ngx_http_finalize_request (ngx_http_request.c:2591)
==41==    by 0x15E592: ngx_epoll_process_events (ngx_epoll_module.c:901)
==41==  Address 0x6a3c0d8 is 8 bytes inside a block of size 1,024 free'd
";

const SYSCALL_UNADDRESSABLE: &str = "==41== Syscall param write(buf) points to unaddressable byte(s)
==41==    at 0x4A1E2A3: write (write.c:26)
==41==    by 0x16E0F1: ngx_log_error_core (ngx_log.c:181)
";

const UNINIT_IN_NGINX: &str = "==41== Conditional jump or move depends on uninitialised value(s)
==41==    at 0x151E90: ngx_event_process_init (ngx_event.c:762)
";

const UNINIT_OURS: &str = "==41== Conditional jump or move depends on uninitialised value(s)
==41==    at 0x558D1BD: correlation_var (filter.rs:201)
==41==    by 0x558D1BD: ngx_ase_response::filter::report (filter.rs:240)
==41==    by 0x175D46: ngx_http_send_header (ngx_http_core_module.c:1856)
";

#[test]
fn nginx_own_leaks_and_possible_leaks_are_not_findings() {
    assert_eq!(kinds(&log(&[NGINX_LEAK, POSSIBLE_LEAK_OURS])), vec![]);
}

#[test]
fn a_definite_leak_through_our_modules_is_a_finding() {
    let findings = check_log(&log(&[NGINX_LEAK, OUR_LEAK]));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, Kind::DefiniteLeak);
    assert!(findings[0].record.contains("ngx_ase_common::net::pool::grow (pool.rs:88)"), "{}", findings[0].record);
    assert!(!findings[0].record.contains("==41=="), "the record is given without valgrind's prefixes");
}

#[test]
fn an_invalid_access_anywhere_is_a_finding() {
    assert_eq!(kinds(&log(&[INVALID_READ_IN_NGINX])), vec![Kind::InvalidAccess]);
    assert_eq!(kinds(&log(&[SYSCALL_UNADDRESSABLE])), vec![Kind::InvalidAccess]);
}

#[test]
fn an_uninitialised_value_counts_only_through_our_modules() {
    assert_eq!(kinds(&log(&[UNINIT_IN_NGINX])), vec![]);
    assert_eq!(kinds(&log(&[UNINIT_IN_NGINX, UNINIT_OURS])), vec![Kind::Uninitialised]);
}

#[test]
fn a_process_without_a_summary_was_not_fully_checked() {
    let cut = HEAD.to_string() + INVALID_READ_IN_NGINX;
    assert_eq!(kinds(&cut), vec![Kind::InvalidAccess, Kind::NoSummary]);
    assert_eq!(kinds(HEAD), vec![Kind::NoSummary]);
}

#[test]
fn logs_of_other_programs_are_not_nginx_s() {
    let other = log(&[INVALID_READ_IN_NGINX]).replace("/repo/build/vendored/sbin/nginx", "/bin/sh");
    assert_eq!(kinds(&other), vec![]);
}
