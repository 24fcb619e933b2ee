//! A RAM-backed NOR flash with power-loss injection (tests only).
//!
//! NOR semantics: erase sets a sector to `0xFF`; programming can only clear
//! bits. A write that would need a 0 -> 1 transition fails with
//! [`MockError::NotErased`] (a bug in the code under test), it is not silently ANDed.
//!
//! Power loss: [`PowerCut`] names the N-th erase/write operation (1-based,
//! counting both kinds) and what happened to it:
//! - [`CutMode::NotApplied`]: power died before the operation changed anything;
//! - [`CutMode::Half`]: the first half of its bytes were erased / programmed,
//!   the rest is unchanged (a torn operation);
//! - [`CutMode::Applied`]: the operation completed, power died right after.
//!
//! In every mode that operation and every later one (reads included) return
//! [`MockError::PowerLost`]. [`MockFlash::reboot`] gives a powered flash with
//! the same bytes, as a device restarting from its flash contents.

use alloc::vec;
use alloc::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of the mock flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockError {
    /// The power is off.
    PowerLost,
    /// Offset or length not aligned.
    NotAligned,
    /// Beyond the end.
    OutOfBounds,
    /// Programming over bits that are not erased.
    NotErased,
}

impl NorFlashError for MockError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MockError::NotAligned => NorFlashErrorKind::NotAligned,
            MockError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// How the interrupted operation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Nothing of it reached the flash.
    NotApplied,
    /// Its first half reached the flash.
    Half,
    /// All of it reached the flash.
    Applied,
}

/// A scheduled power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerCut {
    /// The erase/write operation (1-based) during which power dies.
    pub at_op: usize,
    /// What happens to that operation.
    pub mode: CutMode,
}

/// RAM NOR flash; `W` = write size, `E` = erase (sector) size.
#[derive(Debug, Clone)]
pub struct MockFlash<const W: usize = 4, const E: usize = 4096> {
    /// The bytes.
    pub data: Vec<u8>,
    /// Erase/write operations performed (attempted) so far.
    pub ops: usize,
    cut: Option<PowerCut>,
    dead: bool,
}

impl<const W: usize, const E: usize> MockFlash<W, E> {
    /// An erased flash of `size` bytes.
    pub fn new(size: usize) -> Self {
        MockFlash {
            data: vec![0xFF; size],
            ops: 0,
            cut: None,
            dead: false,
        }
    }

    /// Schedule a power cut (operation numbers count from now).
    pub fn cut_power(&mut self, cut: PowerCut) {
        self.ops = 0;
        self.cut = Some(cut);
    }

    /// Whether power has been cut.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// The same bytes on a powered flash with no cut scheduled.
    pub fn reboot(&self) -> Self {
        MockFlash {
            data: self.data.clone(),
            ops: 0,
            cut: None,
            dead: false,
        }
    }

    /// A restart that keeps the operation counter and the scheduled cut (so one
    /// cut schedule can span several boots of a scenario). Must not be dead.
    pub fn warm_restart(&self) -> Self {
        assert!(!self.dead, "warm_restart of a dead flash");
        self.clone()
    }

    /// Count an operation; `Some(mode)` if power dies during it.
    fn tick(&mut self) -> Result<Option<CutMode>, MockError> {
        if self.dead {
            return Err(MockError::PowerLost);
        }
        self.ops += 1;
        match self.cut {
            Some(c) if c.at_op == self.ops => {
                self.dead = true;
                Ok(Some(c.mode))
            }
            _ => Ok(None),
        }
    }
}

impl<const W: usize, const E: usize> ErrorType for MockFlash<W, E> {
    type Error = MockError;
}

impl<const W: usize, const E: usize> ReadNorFlash for MockFlash<W, E> {
    const READ_SIZE: usize = 4;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        if self.dead {
            return Err(MockError::PowerLost);
        }
        let o = offset as usize;
        if !o.is_multiple_of(Self::READ_SIZE) || !bytes.len().is_multiple_of(Self::READ_SIZE) {
            return Err(MockError::NotAligned);
        }
        let src = self
            .data
            .get(o..o + bytes.len())
            .ok_or(MockError::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const W: usize, const E: usize> NorFlash for MockFlash<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), MockError> {
        let (f, t) = (from as usize, to as usize);
        if f % E != 0 || t % E != 0 || f > t {
            return Err(MockError::NotAligned);
        }
        if t > self.data.len() {
            return Err(MockError::OutOfBounds);
        }
        let n = match self.tick()? {
            None | Some(CutMode::Applied) => t - f,
            Some(CutMode::Half) => (t - f) / 2,
            Some(CutMode::NotApplied) => 0,
        };
        self.data[f..f + n].fill(0xFF);
        if self.dead {
            Err(MockError::PowerLost)
        } else {
            Ok(())
        }
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        let o = offset as usize;
        if !o.is_multiple_of(W) || !bytes.len().is_multiple_of(W) {
            return Err(MockError::NotAligned);
        }
        let dst = self
            .data
            .get(o..o + bytes.len())
            .ok_or(MockError::OutOfBounds)?;
        if dst.iter().zip(bytes).any(|(&old, &new)| old & new != new) {
            return Err(MockError::NotErased);
        }
        let n = match self.tick()? {
            None | Some(CutMode::Applied) => bytes.len(),
            Some(CutMode::Half) => bytes.len() / 2,
            Some(CutMode::NotApplied) => 0,
        };
        for (d, b) in self.data[o..o + n].iter_mut().zip(bytes) {
            *d &= *b;
        }
        if self.dead {
            Err(MockError::PowerLost)
        } else {
            Ok(())
        }
    }
}
