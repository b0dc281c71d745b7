//! The encoders' counterpart of [`Reader`](super::reader::Reader): big-endian `put_*` methods
//! on `Vec<u8>` (append) and on `&mut [u8]` (fill a fixed buffer, such as the frame header),
//! one per getter, so that each `encode` reads like its `decode`.

/// Big-endian writes. Only `put_slice` is required.
pub trait Put {
    fn put_slice(&mut self, s: &[u8]);

    #[inline]
    fn put_u8(&mut self, v: u8) {
        self.put_slice(&[v]);
    }

    #[inline]
    fn put_u16(&mut self, v: u16) {
        self.put_slice(&v.to_be_bytes());
    }

    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_be_bytes());
    }

    #[inline]
    fn put_i32(&mut self, v: i32) {
        self.put_slice(&v.to_be_bytes());
    }

    #[inline]
    fn put_i64(&mut self, v: i64) {
        self.put_slice(&v.to_be_bytes());
    }

    /// `len u8 | bytes`; bytes past the 255th are left out.
    fn put_bytes_u8(&mut self, b: &[u8]) {
        let b = &b[..b.len().min(u8::MAX as usize)];
        self.put_u8(b.len() as u8);
        self.put_slice(b);
    }

    /// `len u8 | UTF-8 bytes`; bytes past the 255th are left out.
    fn put_str_u8(&mut self, s: &str) {
        self.put_bytes_u8(s.as_bytes());
    }
}

impl Put for Vec<u8> {
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }
}

/// Fills the slice from its start, moving it past what was written. Writing past its end is a
/// bug in the encoder (the sizes are fixed), and panics.
impl Put for &mut [u8] {
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        let (head, tail) = std::mem::take(self).split_at_mut(s.len());
        head.copy_from_slice(s);
        *self = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_and_slice_write_the_same_bytes() {
        let mut v = Vec::new();
        let mut a = [0u8; 10];
        let mut s = &mut a[..];
        for w in [&mut v as &mut dyn Put, &mut s] {
            w.put_u8(1);
            w.put_u16(0x0203);
            w.put_i32(-1);
            w.put_str_u8("ab");
        }
        assert_eq!(v, [1, 2, 3, 0xff, 0xff, 0xff, 0xff, 2, b'a', b'b']);
        assert_eq!(a[..], v[..]);
    }

    #[test]
    fn length_prefixed_fields_stop_at_255_bytes() {
        let mut v = Vec::new();
        v.put_bytes_u8(&[7; 300]);
        assert_eq!(v.len(), 256);
        assert_eq!(v[0], 255);
    }
}
