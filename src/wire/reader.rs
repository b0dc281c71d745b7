//! A cursor over a body being parsed: every read is bounds-checked and names what was missing,
//! so parsers stay short and never index past the end.

use super::WireError;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let s = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or(WireError::Truncated(what))?;
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        let len = self.u8(what)? as usize;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| WireError::Malformed(format!("{what} is not UTF-8")))
    }

    pub fn rest(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn finish(&self, op: &str) -> Result<(), WireError> {
        match self.rest() {
            0 => Ok(()),
            n => Err(WireError::Malformed(format!(
                "{op} body has {n} trailing bytes"
            ))),
        }
    }
}
