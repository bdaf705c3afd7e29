//! Wiping secrets (the `ASE-Token` and buffers holding it) before their memory is freed.

use core::sync::atomic::{compiler_fence, Ordering};

/// Overwrites `buf` with zeros in a way the compiler may not drop as a dead store, even
/// when the memory is freed right after.
pub fn zeroize(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
    compiler_fence(Ordering::SeqCst);
    std::hint::black_box(buf);
}

/// Zeroes all of `v`'s allocation (also the capacity beyond its length, which may hold
/// an earlier, longer content) and leaves it empty, keeping the allocation.
pub fn zeroize_vec(v: &mut Vec<u8>) {
    let cap = v.capacity();
    v.resize(cap, 0);
    zeroize(v);
    v.clear();
}

/// Makes room for `additional` more bytes after `v`'s length without leaving the old
/// bytes behind in freed memory: when the allocation must grow, the content moves to a
/// new one and the old one is zeroed before it is freed.
pub fn reserve(v: &mut Vec<u8>, additional: usize) {
    if v.capacity() - v.len() >= additional {
        return;
    }
    let mut grown = Vec::with_capacity((v.len() + additional).max(v.capacity() * 2));
    grown.extend_from_slice(v);
    zeroize_vec(v);
    *v = grown;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroes_length_and_spare_capacity() {
        let mut v = b"secret-secret-secret".to_vec();
        v.truncate(6);
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        zeroize_vec(&mut v);
        assert!(v.is_empty());
        assert_eq!((v.as_ptr(), v.capacity()), (ptr, cap), "the allocation is kept");
        // SAFETY: the allocation is alive and `cap` bytes long, all written by zeroize_vec.
        let all = unsafe { core::slice::from_raw_parts(ptr, cap) };
        assert!(all.iter().all(|&b| b == 0));
    }

    #[test]
    fn reserve_keeps_the_content_and_grows() {
        let mut v = Vec::with_capacity(4);
        v.extend_from_slice(b"abcd");
        reserve(&mut v, 100);
        assert_eq!(v, b"abcd");
        assert!(v.capacity() >= 104);
        let cap = v.capacity();
        reserve(&mut v, 10);
        assert_eq!(v.capacity(), cap, "no new allocation when there is room");
    }
}
