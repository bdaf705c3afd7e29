//! What the ASE's answer means for the request (the table in docs/protocol.md), in safe Rust.

use ngx_ase_shared::abi::{AseError, CheckResult, Verdict};

use crate::conf::FailMode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the request.
    Continue(Verdict),
    /// Answer the client with this status.
    Finalize(u16, Verdict),
}

/// How loudly an answer is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Complaint {
    None,
    /// 401: the `ASE-Token` is missing or wrong.
    BadToken,
    /// 400: the ASE could not read our JSON.
    Malformed,
    /// Any other failure (timeout, refused, unexpected status...).
    AseError,
}

/// `block_status` answers the ASE's block; `fail_status` a check that fails closed.
pub fn decide(result: &CheckResult, fail_mode: FailMode, block_status: u16, fail_status: u16) -> (Decision, Complaint) {
    let fail = |c| match fail_mode {
        FailMode::Closed => (Decision::Finalize(fail_status, Verdict::FailClosed), c),
        _ => (Decision::Continue(Verdict::FailOpen), c),
    };
    if result.error() != AseError::None {
        return fail(Complaint::AseError);
    }
    match result.status {
        200 => (Decision::Continue(Verdict::Allow), Complaint::None),
        403 => (Decision::Finalize(block_status, Verdict::Block), Complaint::None),
        // Unknown API or host: the ASE does not protect this API. The channel passes a 503
        // on as an answer only when its body is the ASE's own (`Error: Unknown API` /
        // `Error: Unknown Hostname`); any other 503 (a load balancer's, say) comes as the
        // error `Bad503` and fails above.
        503 => (Decision::Continue(Verdict::Allow), Complaint::None),
        401 => fail(Complaint::BadToken),
        400 => fail(Complaint::Malformed),
        _ => fail(Complaint::AseError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> CheckResult {
        CheckResult::new(status, AseError::None, 1)
    }

    #[test]
    fn the_protocol_table() {
        let open = FailMode::Open;
        assert_eq!(decide(&answer(200), open, 403, 503).0, Decision::Continue(Verdict::Allow));
        assert_eq!(decide(&answer(403), open, 429, 503).0, Decision::Finalize(429, Verdict::Block));
        assert_eq!(decide(&answer(503), open, 403, 503).0, Decision::Continue(Verdict::Allow));
        assert_eq!(decide(&answer(401), open, 403, 503), (Decision::Continue(Verdict::FailOpen), Complaint::BadToken));
        assert_eq!(decide(&answer(400), open, 403, 503), (Decision::Continue(Verdict::FailOpen), Complaint::Malformed));
        assert_eq!(decide(&answer(502), open, 403, 503), (Decision::Continue(Verdict::FailOpen), Complaint::AseError));
        assert_eq!(decide(&answer(302), open, 403, 503).0, Decision::Continue(Verdict::FailOpen));
    }

    #[test]
    fn errors_follow_the_fail_mode() {
        let timeout = CheckResult::new(0, AseError::Timeout, 500);
        assert_eq!(decide(&timeout, FailMode::Open, 403, 503).0, Decision::Continue(Verdict::FailOpen));
        assert_eq!(decide(&timeout, FailMode::Closed, 403, 503).0, Decision::Finalize(503, Verdict::FailClosed));
        assert_eq!(decide(&answer(401), FailMode::Closed, 403, 503).0, Decision::Finalize(503, Verdict::FailClosed));
        let unavailable = CheckResult::new(0, AseError::Unavailable, 0);
        assert_eq!(
            decide(&unavailable, FailMode::Open, 403, 503),
            (Decision::Continue(Verdict::FailOpen), Complaint::AseError)
        );
        assert_eq!(decide(&unavailable, FailMode::Closed, 403, 503).0, Decision::Finalize(503, Verdict::FailClosed));
        // an error value from another build is an error, never an answer
        let unknown = CheckResult { status: 200, error: 200, elapsed_ms: 1 };
        assert_eq!(decide(&unknown, FailMode::Open, 403, 503).0, Decision::Continue(Verdict::FailOpen));
        // a 503 that is not the ASE's unknown-API answer (a load balancer's) is an error
        let foreign = CheckResult::new(0, AseError::Bad503, 1);
        assert_eq!(
            decide(&foreign, FailMode::Open, 403, 503),
            (Decision::Continue(Verdict::FailOpen), Complaint::AseError)
        );
        assert_eq!(decide(&foreign, FailMode::Closed, 403, 503).0, Decision::Finalize(503, Verdict::FailClosed));
        // ase_fail_status: the status of a fail-closed, not of a block
        assert_eq!(decide(&timeout, FailMode::Closed, 403, 429).0, Decision::Finalize(429, Verdict::FailClosed));
        assert_eq!(decide(&answer(403), FailMode::Closed, 403, 429).0, Decision::Finalize(403, Verdict::Block));
        // a block is a block whatever the fail mode
        assert_eq!(decide(&answer(403), FailMode::Closed, 403, 503).0, Decision::Finalize(403, Verdict::Block));
    }
}
