//! Big-endian payload reader and writer used by the typed messages.

use crate::constants::boolean;
use crate::error::{DecodeError, EncodeError};
use crate::packet::Payload;

/// Reads big-endian fields from a payload; any short read is `BadLength`.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let end = self.pos + N;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::BadLength {
                len: self.bytes.len(),
            })?;
        self.pos = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }

    pub(crate) fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.take()?))
    }

    /// A bool byte: 0 or 1. **Assumed** strict: other values are `BadValue`.
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            boolean::FALSE => Ok(false),
            boolean::TRUE => Ok(true),
            _ => Err(DecodeError::BadValue),
        }
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    /// How many bytes are left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Every byte not read yet; reading ends here.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        rest
    }

    pub(crate) fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_be_bytes(self.take()?))
    }

    /// An unsigned integer of `bytes` bytes (1, 2 or 4).
    pub(crate) fn uint(&mut self, bytes: usize) -> Result<u32, DecodeError> {
        Ok(match bytes {
            1 => u32::from(self.u8()?),
            2 => u32::from(self.u16()?),
            _ => u32::from_be_bytes(self.take()?),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Succeeds only if every byte was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::BadLength {
                len: self.bytes.len(),
            })
        }
    }
}

/// Writes big-endian fields into an inline payload.
pub(crate) struct Writer {
    payload: Payload,
}

impl Writer {
    pub(crate) const fn new() -> Writer {
        Writer {
            payload: Payload::EMPTY,
        }
    }

    pub(crate) fn bytes(&mut self, data: &[u8]) -> Result<&mut Writer, EncodeError> {
        self.payload.extend(data)?;
        Ok(self)
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<&mut Writer, EncodeError> {
        self.bytes(&[v])
    }

    pub(crate) fn i8(&mut self, v: i8) -> Result<&mut Writer, EncodeError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn bool(&mut self, v: bool) -> Result<&mut Writer, EncodeError> {
        self.u8(if v { boolean::TRUE } else { boolean::FALSE })
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<&mut Writer, EncodeError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn i32(&mut self, v: i32) -> Result<&mut Writer, EncodeError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<&mut Writer, EncodeError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<&mut Writer, EncodeError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn f32(&mut self, v: f32) -> Result<&mut Writer, EncodeError> {
        self.bytes(&v.to_be_bytes())
    }

    /// The low `bytes` bytes (1, 2 or 4) of `v`, big-endian.
    pub(crate) fn uint(&mut self, v: u32, bytes: usize) -> Result<&mut Writer, EncodeError> {
        let all = v.to_be_bytes();
        self.bytes(&all[4 - bytes.min(4)..])
    }

    pub(crate) fn finish(self) -> Payload {
        self.payload
    }
}
