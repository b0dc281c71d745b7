//! The one cursor every decoder reads with. Each getter is bounds-checked and big-endian; a read
//! past the end is [`WireError::Truncated`] naming what was missing, so decoders stay short,
//! never index by hand and never panic on what a peer sent.
//!
//! Getters and the [`Put`](super::writer::Put) methods that write the same field:
//!
//! | read                  | write                  | bytes                        |
//! | --------------------- | ---------------------- | ---------------------------- |
//! | `u8` `u16` `u32`      | `put_u8` `put_u16` `put_u32` | 1, 2, 4                |
//! | `i32` `i64`           | `put_i32` `put_i64`    | 4, 8                         |
//! | `bytes(n)` / `skip(n)`| `put_slice`            | n                            |
//! | `try_u32` `try_bytes(n)` | (as above)          | `Option`, for hot loops      |
//! | `bytes_u8` / `str_u8` / `string` | `put_bytes_u8` / `put_str_u8` | `len u8 \| bytes` |
//! | `rest_bytes`          | `put_slice`            | everything left              |

use super::WireError;

#[derive(Debug, Clone)]
pub struct Reader<'a> {
    /// What is still to be read.
    rest: &'a [u8],
    /// Length of the whole input, for [`Reader::position`].
    len: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            rest: buf,
            len: buf.len(),
        }
    }

    /// The next `n` bytes, or `None` (not moving) when fewer remain. The `try_` getters are
    /// for hot loops that answer a shortfall with their own error: an `Option` costs nothing to
    /// drop, where a discarded `Result<_, WireError>` must be matched and dropped.
    #[inline]
    pub fn try_bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (s, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(s)
    }

    /// The next `N` bytes as an array, or `None` (not moving) when fewer remain.
    #[inline]
    pub fn try_array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (a, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*a)
    }

    /// A big-endian `u32`, or `None` (not moving) when fewer than 4 bytes remain.
    #[inline]
    pub fn try_u32(&mut self) -> Option<u32> {
        self.try_array().map(u32::from_be_bytes)
    }

    /// The next `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        self.try_bytes(n).ok_or(WireError::Truncated(what))
    }

    /// Skips `n` bytes.
    #[inline]
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), WireError> {
        self.bytes(n, what).map(|_| ())
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        self.try_array().ok_or(WireError::Truncated(what))
    }

    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        self.array::<1>(what).map(|[b]| b)
    }

    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        self.array(what).map(u16::from_be_bytes)
    }

    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        self.array(what).map(u32::from_be_bytes)
    }

    #[inline]
    pub fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        self.array(what).map(i32::from_be_bytes)
    }

    #[inline]
    pub fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        self.array(what).map(i64::from_be_bytes)
    }

    /// `len u8 | bytes`.
    pub fn bytes_u8(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u8(what)?;
        self.bytes(len as usize, what)
    }

    /// `len u8 | UTF-8 bytes`, borrowed.
    pub fn str_u8(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes_u8(what)?)
            .map_err(|_| WireError::Malformed(format!("{what} is not UTF-8")))
    }

    /// `len u8 | UTF-8 bytes`, owned.
    pub fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        self.str_u8(what).map(str::to_string)
    }

    /// Everything not read yet (the cursor moves to the end).
    pub fn rest_bytes(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// What is not read yet, without moving.
    pub fn peek_rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Bytes read so far: the offset of the next byte in the input.
    #[inline]
    pub fn position(&self) -> usize {
        self.len - self.rest.len()
    }

    /// Checks the body has been read to its end.
    pub fn finish(&self, op: &str) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::Malformed(format!(
                "{op} body has {n} trailing bytes"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::writer::Put;
    use super::*;

    #[test]
    fn getters_read_what_put_wrote() {
        let mut b = Vec::new();
        b.put_u8(0xAB);
        b.put_u16(0xBEEF);
        b.put_u32(0xDEAD_BEEF);
        b.put_i32(-2);
        b.put_i64(i64::MIN + 1);
        b.put_bytes_u8(b"xy");
        b.put_str_u8("caf\u{e9}");
        b.put_slice(b"tail");
        let mut r = Reader::new(&b);
        assert_eq!(r.u8("a").unwrap(), 0xAB);
        assert_eq!(r.u16("b").unwrap(), 0xBEEF);
        assert_eq!(r.u32("c").unwrap(), 0xDEAD_BEEF);
        assert_eq!(r.i32("d").unwrap(), -2);
        assert_eq!(r.position(), 11);
        assert_eq!(r.i64("e").unwrap(), i64::MIN + 1);
        assert_eq!(r.bytes_u8("f").unwrap(), b"xy");
        assert_eq!(r.str_u8("g").unwrap(), "caf\u{e9}");
        assert_eq!(r.remaining(), 4);
        assert!(r.finish("X").is_err());
        assert_eq!(r.rest_bytes(), b"tail");
        assert!(r.is_empty());
        assert_eq!(r.finish("X"), Ok(()));
    }

    #[test]
    fn short_reads_are_truncated_and_do_not_move() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u32("four"), Err(WireError::Truncated("four")));
        assert_eq!(r.i64("eight"), Err(WireError::Truncated("eight")));
        assert_eq!(r.bytes(4, "n"), Err(WireError::Truncated("n")));
        assert_eq!(r.bytes(usize::MAX, "n"), Err(WireError::Truncated("n")));
        assert_eq!(r.try_u32(), None);
        assert_eq!(r.try_bytes(4), None);
        assert_eq!(r.u16("two").unwrap(), 0x0102);
        assert_eq!(r.try_bytes(1), Some(&[3][..]));
        assert_eq!(r.try_bytes(0), Some(&[][..]));
        assert_eq!(r.bytes_u8("s"), Err(WireError::Truncated("s")));
        assert!(matches!(
            Reader::new(b"\x01\xff").str_u8("s"),
            Err(WireError::Malformed(_))
        ));
    }
}
