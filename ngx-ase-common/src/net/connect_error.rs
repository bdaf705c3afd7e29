//! What a failed connect's `errno` says, in the channel's words. Whose doing it was decides
//! whether the node is charged: `Local` (nginx could not even open a socket) never is.

use ngx_ase_shared::abi::AseError;

use crate::engine::ConnectError;

/// The error for a connect that failed with `errno` (0 or unknown: `Refused`).
pub fn from_errno(errno: i32) -> AseError {
    match errno {
        libc::ECONNREFUSED => AseError::Refused,
        libc::ETIMEDOUT => AseError::Timeout,
        libc::ECONNRESET | libc::ECONNABORTED => AseError::Reset,
        libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN | libc::EHOSTDOWN => AseError::Unreachable,
        // No descriptor, no memory, no local port (EAGAIN from connect on Linux).
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL | libc::EAGAIN => {
            AseError::Local
        }
        _ => AseError::Refused,
    }
}

/// A connect that failed with `errno`, the number kept.
pub fn with_errno(errno: i32) -> ConnectError {
    ConnectError { error: from_errno(errno), errno: Some(errno) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_is_blamed_only_for_what_the_network_says_of_it() {
        assert_eq!(from_errno(libc::ECONNREFUSED), AseError::Refused);
        assert_eq!(from_errno(libc::EHOSTUNREACH), AseError::Unreachable);
        assert_eq!(from_errno(libc::ETIMEDOUT), AseError::Timeout);
        assert_eq!(from_errno(libc::ECONNRESET), AseError::Reset);
        for local in [libc::EMFILE, libc::ENFILE, libc::EADDRNOTAVAIL, libc::EAGAIN] {
            assert_eq!(from_errno(local), AseError::Local, "{local}");
        }
        assert_eq!(from_errno(0), AseError::Refused);
        assert_eq!(with_errno(libc::EMFILE), ConnectError { error: AseError::Local, errno: Some(libc::EMFILE) });
    }
}
