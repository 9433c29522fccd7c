//! Short values rendered on every request (the request id, `traceparent`,
//! the upstream's path and query) are carved from a per-thread block
//! instead of each taking an allocation of its own, and clone by reference
//! count (a value built from a `Vec` allocates again on its first clone).
//!
//! A value keeps its whole block (8 KiB) alive for as long as it lives;
//! these live as long as the request that made them, so the blocks held
//! are about one per thread plus one per long-running request.

use bytes::{BufMut, Bytes, BytesMut};
use std::cell::RefCell;

/// The size of one block.
const BLOCK: usize = 8 * 1024;

thread_local! {
    /// What is left of this thread's current block.
    static REST: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The bytes `write` puts, which should be about `len` (more is correct,
/// only slower), in a slice of this thread's current block, or of a new
/// one when fewer than `len` bytes are left in it.
fn carve(len: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
    REST.with(|rest| {
        let mut rest = rest.borrow_mut();
        if rest.capacity() < len {
            *rest = BytesMut::with_capacity(BLOCK.max(len));
        }
        write(&mut rest);
        rest.split().freeze()
    })
}

/// `parts` one after another, carved.
pub fn concat(parts: &[&[u8]]) -> Bytes {
    let len = parts.iter().map(|p| p.len()).sum();
    carve(len, |out| {
        for part in parts {
            out.put_slice(part);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carve_slices_one_block_until_it_is_used_up() {
        let a = concat(&[b"abc", b"def"]);
        let b = concat(&[b"xyz"]);
        assert_eq!(&a[..], b"abcdef");
        assert_eq!(&b[..], b"xyz");
        // Same block: the second value starts where the first ended.
        assert_eq!(a.as_ptr().wrapping_add(6), b.as_ptr());
        let big = vec![b'x'; BLOCK];
        let c = concat(&[&big]);
        assert_eq!(c.len(), BLOCK);
        assert_eq!((&a[..], &b[..]), (&b"abcdef"[..], &b"xyz"[..]));
    }

    #[test]
    fn carve_takes_what_write_puts_even_past_len() {
        let v = carve(2, |out| out.put_slice(&[b'q'; 100]));
        assert_eq!(&v[..], &[b'q'; 100][..]);
        let next = concat(&[b"ok"]);
        assert_eq!(&next[..], b"ok");
    }

    #[test]
    fn carved_values_outlive_their_block_being_replaced() {
        let values: Vec<Bytes> = (0..2000)
            .map(|i| concat(&[format!("value-{i:05}").as_bytes()]))
            .collect();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(&v[..], format!("value-{i:05}").as_bytes());
        }
    }
}
