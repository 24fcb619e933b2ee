//! An ESP-IDF-like A/B partition table over any [`NorFlash`].
//!
//! # Layout
//!
//! ```text
//! otadata_offset                      otadata copy 0   (one erase sector)
//! otadata_offset + 1 * ERASE_SIZE     otadata copy 1   (one erase sector)
//! otadata_offset + 2 * ERASE_SIZE     ota_0            (slot_size bytes)
//! ... + slot_size                     ota_1            (slot_size bytes)
//! ```
//!
//! # otadata entry (64 bytes at the start of each copy's sector, little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4  | `seq`: selection counter; higher is newer; `0` and `0xFFFF_FFFF` are invalid |
//! | 4  | 1  | slot: 0 = ota_0, 1 = ota_1 |
//! | 5  | 3  | reserved `0xFF` |
//! | 8  | 4  | image state, ESP-IDF numbers: NEW=0, PENDING_VERIFY=1, VALID=2, INVALID=3, ABORTED=4, UNDEFINED=0xFFFF_FFFF |
//! | 12 | 4  | image length (header + body) |
//! | 16 | 32 | SHA-256 of the image in that slot |
//! | 48 | 12 | reserved `0xFF` |
//! | 60 | 4  | CRC-32 (IEEE) over bytes 0..60 |
//!
//! As in ESP-IDF, the two copies are written alternately and the valid entry with
//! the highest `seq` selects the boot slot. Unlike ESP-IDF, the CRC covers the
//! whole entry (not only `seq`), and the entry records the image length and
//! digest so that [`Partitions::on_boot`] can check the slot before choosing it.
//!
//! # Write discipline (why power loss never bricks)
//!
//! Every otadata change erases and rewrites exactly one sector, and:
//! - [`Partitions::set_boot`] writes the copy that does *not* hold the running
//!   entry, with `seq + 1` and state NEW;
//! - state changes of the running/selected entry (NEW -> PENDING_VERIFY ->
//!   VALID, -> INVALID, PENDING_VERIFY -> ABORTED) rewrite it in place; while they
//!   do, the other copy still holds the previous selection, whose slot was not
//!   touched, so a cut falls back to the previous image;
//! - an update only ever writes the slot that is not running.
//!
//! Rollback (ESP-IDF semantics): `set_boot` marks the new slot NEW; on boot an
//! entry still PENDING_VERIFY becomes ABORTED; INVALID and ABORTED entries are
//! never chosen; a NEW entry that is chosen becomes PENDING_VERIFY and gets
//! exactly one boot; the application then calls [`Partitions::mark_valid`] or
//! [`Partitions::mark_invalid_and_rollback`].

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use sha2::{Digest, Sha256};

use crate::crc::crc32;
use crate::image::{HEADER_LEN, ImageHeader};

/// Length of one otadata entry in bytes.
pub const ENTRY_LEN: usize = 64;

/// The large erase unit of SPI NOR flash (64 KiB block erase), used by
/// updates where a slot has an aligned whole block ahead.
pub const ERASE_BLOCK: u64 = 64 * 1024;

/// One of the two application slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// `ota_0`.
    Ota0,
    /// `ota_1`.
    Ota1,
}

impl Slot {
    /// 0 or 1.
    pub fn index(self) -> usize {
        match self {
            Slot::Ota0 => 0,
            Slot::Ota1 => 1,
        }
    }

    /// The slot for index 0 or 1.
    pub fn from_index(i: usize) -> Option<Slot> {
        match i {
            0 => Some(Slot::Ota0),
            1 => Some(Slot::Ota1),
            _ => None,
        }
    }

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::Ota0 => Slot::Ota1,
            Slot::Ota1 => Slot::Ota0,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::Ota0 => "ota_0",
            Slot::Ota1 => "ota_1",
        })
    }
}

/// Image states, with ESP-IDF's `esp_ota_img_states_t` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageState {
    /// Selected, never booted.
    New,
    /// Booted once, waiting for the application to confirm it.
    PendingVerify,
    /// Confirmed by the application.
    Valid,
    /// Refused by the application; never chosen again.
    Invalid,
    /// Reset before confirmation; never chosen again.
    Aborted,
    /// No rollback tracking (e.g. a factory-provisioned image).
    Undefined,
}

impl ImageState {
    /// The ESP-IDF number.
    pub fn to_u32(self) -> u32 {
        match self {
            ImageState::New => 0,
            ImageState::PendingVerify => 1,
            ImageState::Valid => 2,
            ImageState::Invalid => 3,
            ImageState::Aborted => 4,
            ImageState::Undefined => 0xFFFF_FFFF,
        }
    }

    /// From the ESP-IDF number; `None` for any other value.
    pub fn from_u32(v: u32) -> Option<ImageState> {
        Some(match v {
            0 => ImageState::New,
            1 => ImageState::PendingVerify,
            2 => ImageState::Valid,
            3 => ImageState::Invalid,
            4 => ImageState::Aborted,
            0xFFFF_FFFF => ImageState::Undefined,
            _ => return None,
        })
    }

    /// Whether the boot decision may choose an entry in this state.
    pub fn bootable(self) -> bool {
        !matches!(self, ImageState::Invalid | ImageState::Aborted)
    }
}

/// One otadata entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaSelectEntry {
    /// Selection counter; the highest valid one wins.
    pub seq: u32,
    /// The slot it selects.
    pub slot: Slot,
    /// The state of the image in that slot.
    pub state: ImageState,
    /// Image length (header + body).
    pub image_len: u32,
    /// SHA-256 of the image.
    pub image_sha256: [u8; 32],
}

impl OtaSelectEntry {
    /// Encode as the 64 on-flash bytes.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0xFFu8; ENTRY_LEN];
        b[0..4].copy_from_slice(&self.seq.to_le_bytes());
        b[4] = self.slot.index() as u8;
        b[8..12].copy_from_slice(&self.state.to_u32().to_le_bytes());
        b[12..16].copy_from_slice(&self.image_len.to_le_bytes());
        b[16..48].copy_from_slice(&self.image_sha256);
        let crc = crc32(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode; `None` unless CRC, seq, slot, state and reserved bytes are all good.
    pub fn decode(b: &[u8; ENTRY_LEN]) -> Option<OtaSelectEntry> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if crc32(&b[..60]) != u32_at(60) {
            return None;
        }
        if b[5..8].iter().chain(&b[48..60]).any(|&x| x != 0xFF) {
            return None;
        }
        let seq = u32_at(0);
        if seq == 0 || seq == u32::MAX {
            return None;
        }
        let mut image_sha256 = [0u8; 32];
        image_sha256.copy_from_slice(&b[16..48]);
        Some(OtaSelectEntry {
            seq,
            slot: Slot::from_index(usize::from(b[4]))?,
            state: ImageState::from_u32(u32_at(8))?,
            image_len: u32_at(12),
            image_sha256,
        })
    }
}

/// Where the partitions are on the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Start of otadata (two erase sectors); must be sector-aligned.
    pub otadata_offset: u32,
    /// Size of each of ota_0 and ota_1; a multiple of the erase size.
    pub slot_size: u32,
}

impl Layout {
    /// The layout of a device whose images are at most `image_len` bytes, as
    /// ESP-IDF places its partitions: app slots on [`ERASE_BLOCK`] boundaries
    /// (so updates erase whole blocks), otadata's two sectors (of the
    /// shared [`twinrig_hal::flash::ERASE_SIZE`]) just below ota_0. `None` when the slots would not fit a 32-bit flash.
    pub fn for_image(image_len: u64) -> Option<Layout> {
        let sector = twinrig_hal::flash::ERASE_SIZE as u64;
        let slot = image_len.max(1).div_ceil(ERASE_BLOCK) * ERASE_BLOCK;
        let layout = Layout {
            otadata_offset: u32::try_from(ERASE_BLOCK - 2 * sector).ok()?,
            slot_size: u32::try_from(slot).ok()?,
        };
        // ota_0 starts at ERASE_BLOCK; both slots must end below 4 GiB.
        u32::try_from(ERASE_BLOCK + 2 * slot).ok()?;
        Some(layout)
    }

    /// Offset of otadata copy `i` (0 or 1).
    pub fn otadata_copy<F: NorFlash>(&self, i: usize) -> u32 {
        self.otadata_offset + (i * F::ERASE_SIZE) as u32
    }

    /// Offset of a slot.
    pub fn slot_offset<F: NorFlash>(&self, slot: Slot) -> u32 {
        self.otadata_offset + (2 * F::ERASE_SIZE) as u32 + slot.index() as u32 * self.slot_size
    }

    /// Bytes the layout needs from the start of the flash.
    pub fn end<F: NorFlash>(&self) -> u64 {
        u64::from(self.otadata_offset) + 2 * F::ERASE_SIZE as u64 + 2 * u64::from(self.slot_size)
    }
}

/// What the boot-time decision chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDecision {
    /// Boot a confirmed (or untracked) image.
    Boot {
        /// The slot.
        slot: Slot,
        /// VALID, or UNDEFINED for an untracked image.
        state: ImageState,
        /// A newer selection exists but was abandoned (INVALID, ABORTED or its
        /// slot failed the check): the device fell back from that slot.
        rolled_back_from: Option<Slot>,
    },
    /// First boot of a new image, now PENDING_VERIFY: run the self-test, then
    /// [`Partitions::mark_valid`] or [`Partitions::mark_invalid_and_rollback`].
    /// A reset before either aborts it on the next boot.
    TrialBoot {
        /// The slot.
        slot: Slot,
    },
    /// No slot holds a bootable image (an unprovisioned or destroyed device).
    NoBootableImage,
}

impl BootDecision {
    /// The slot that boots, if any.
    pub fn slot(&self) -> Option<Slot> {
        match self {
            BootDecision::Boot { slot, .. } | BootDecision::TrialBoot { slot } => Some(*slot),
            BootDecision::NoBootableImage => None,
        }
    }
}

/// Why a partition operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionError<E> {
    /// The flash reported an error.
    Flash(E),
    /// The layout does not fit the flash or is misaligned.
    BadLayout(&'static str),
    /// [`Partitions::on_boot`] has not run (nothing is running yet).
    NotBooted,
    /// An update is already open.
    UpdateInProgress,
    /// No update is open.
    NoUpdate,
    /// The running image is PENDING_VERIFY; confirm it before updating (as ESP-IDF).
    RunningNotConfirmed,
    /// The write would pass the end of the slot.
    TooLarge {
        /// Bytes the update would hold.
        size: u64,
        /// The slot size.
        max: u64,
    },
    /// The slot does not hold a complete image (bad header, or a digest that is
    /// not the expected one).
    BadImage,
    /// There is no valid image to roll back to.
    RollbackFailed,
}

impl<E: fmt::Debug> fmt::Display for PartitionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionError::Flash(e) => write!(f, "flash error: {e:?}"),
            PartitionError::BadLayout(why) => write!(f, "bad partition layout: {why}"),
            PartitionError::NotBooted => f.write_str("no image is running yet"),
            PartitionError::UpdateInProgress => f.write_str("an update is already in progress"),
            PartitionError::NoUpdate => f.write_str("no update in progress"),
            PartitionError::RunningNotConfirmed => {
                f.write_str("the running image is not confirmed yet")
            }
            PartitionError::TooLarge { size, max } => {
                write!(f, "image of {size} bytes does not fit a {max}-byte slot")
            }
            PartitionError::BadImage => f.write_str("slot does not hold the expected image"),
            PartitionError::RollbackFailed => f.write_str("no valid image to roll back to"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for PartitionError<E> {}

/// What is running after [`Partitions::on_boot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Running {
    slot: Slot,
    /// Which otadata copy selected it (`None` for the blank-otadata fallback).
    copy: Option<usize>,
    state: ImageState,
}

#[derive(Debug)]
struct Update {
    slot: Slot,
    /// Bytes handed to `write_update` so far.
    len: u64,
    /// Bytes programmed to flash so far (a multiple of the buffer size).
    programmed: u64,
    /// Bytes of the slot erased so far (from its start).
    erased: u64,
    buf: Vec<u8>,
}

/// The partition table on a flash.
#[derive(Debug)]
pub struct Partitions<F: NorFlash> {
    flash: F,
    layout: Layout,
    running: Option<Running>,
    update: Option<Update>,
}

type PResult<T, F> =
    Result<T, PartitionError<<F as embedded_storage::nor_flash::ErrorType>::Error>>;

/// Read `out.len()` bytes at any offset, honouring `READ_SIZE`.
fn read_at<F: ReadNorFlash>(flash: &mut F, offset: u32, out: &mut [u8]) -> Result<(), F::Error> {
    let rs = F::READ_SIZE.max(1) as u32;
    let len = out.len() as u32;
    if offset.is_multiple_of(rs) && len.is_multiple_of(rs) {
        return flash.read(offset, out);
    }
    let start = offset - offset % rs;
    let end = (offset + len).div_ceil(rs) * rs;
    let mut tmp = vec![0u8; (end - start) as usize];
    flash.read(start, &mut tmp)?;
    let skip = (offset - start) as usize;
    out.copy_from_slice(&tmp[skip..skip + out.len()]);
    Ok(())
}

impl<F: NorFlash> Partitions<F> {
    /// The table on `flash`; nothing is read or written yet.
    pub fn new(flash: F, layout: Layout) -> PResult<Self, F> {
        let es = F::ERASE_SIZE as u32;
        let ws = F::WRITE_SIZE.max(1);
        if es == 0 || !layout.otadata_offset.is_multiple_of(es) {
            return Err(PartitionError::BadLayout("otadata not sector-aligned"));
        }
        if layout.slot_size == 0 || !layout.slot_size.is_multiple_of(es) {
            return Err(PartitionError::BadLayout(
                "slot size not a multiple of the sector",
            ));
        }
        if ENTRY_LEN.div_ceil(ws) * ws > F::ERASE_SIZE || F::ERASE_SIZE % ws != 0 {
            return Err(PartitionError::BadLayout(
                "write size does not fit a sector",
            ));
        }
        if layout.end::<F>() > flash.capacity() as u64 {
            return Err(PartitionError::BadLayout("partitions do not fit the flash"));
        }
        Ok(Partitions {
            flash,
            layout,
            running: None,
            update: None,
        })
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The flash, for reading.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// Give the flash back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// The slot size in bytes.
    pub fn slot_size(&self) -> u32 {
        self.layout.slot_size
    }

    /// Read both otadata copies (`None` where erased or corrupt).
    pub fn read_otadata(&mut self) -> PResult<[Option<OtaSelectEntry>; 2], F> {
        let mut out = [None, None];
        for (i, o) in out.iter_mut().enumerate() {
            let mut b = [0u8; ENTRY_LEN];
            read_at(&mut self.flash, self.layout.otadata_copy::<F>(i), &mut b)
                .map_err(PartitionError::Flash)?;
            *o = OtaSelectEntry::decode(&b);
        }
        Ok(out)
    }

    fn write_entry(&mut self, copy: usize, e: &OtaSelectEntry) -> PResult<(), F> {
        let off = self.layout.otadata_copy::<F>(copy);
        self.flash
            .erase(off, off + F::ERASE_SIZE as u32)
            .map_err(PartitionError::Flash)?;
        let ws = F::WRITE_SIZE.max(1);
        let mut b = vec![0xFFu8; ENTRY_LEN.div_ceil(ws) * ws];
        b[..ENTRY_LEN].copy_from_slice(&e.encode());
        self.flash.write(off, &b).map_err(PartitionError::Flash)
    }

    /// Read and decode the header at the start of a slot.
    pub fn read_header(&mut self, slot: Slot) -> PResult<Option<ImageHeader>, F> {
        let mut h = [0u8; HEADER_LEN];
        read_at(&mut self.flash, self.layout.slot_offset::<F>(slot), &mut h)
            .map_err(PartitionError::Flash)?;
        Ok(ImageHeader::decode(&h)
            .ok()
            .filter(|h| h.image_len() <= u64::from(self.layout.slot_size)))
    }

    /// Length and SHA-256 of the image in a slot, as its header describes it;
    /// `None` if the header is bad or the image would not fit the slot.
    pub fn image_digest(&mut self, slot: Slot) -> PResult<Option<(u32, [u8; 32])>, F> {
        let Some(header) = self.read_header(slot)? else {
            return Ok(None);
        };
        let len = header.image_len() as u32;
        self.digest_range(slot, len).map(|d| Some((len, d)))
    }

    fn digest_range(&mut self, slot: Slot, len: u32) -> PResult<[u8; 32], F> {
        let base = self.layout.slot_offset::<F>(slot);
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 1024];
        let mut done = 0u32;
        while done < len {
            let n = (len - done).min(buf.len() as u32) as usize;
            read_at(&mut self.flash, base + done, &mut buf[..n]).map_err(PartitionError::Flash)?;
            hasher.update(&buf[..n]);
            done += n as u32;
        }
        Ok(hasher.finalize().into())
    }

    /// Whether `slot` holds exactly the image an entry describes.
    fn slot_matches(&mut self, slot: Slot, len: u32, sha: &[u8; 32]) -> PResult<bool, F> {
        if len < HEADER_LEN as u32 || len > self.layout.slot_size {
            return Ok(false);
        }
        match self.read_header(slot)? {
            Some(h) if h.image_len() == u64::from(len) => {}
            _ => return Ok(false),
        }
        Ok(self.digest_range(slot, len)? == *sha)
    }

    /// The selection logic shared by [`Self::on_boot`] and [`Self::boot_partition`]:
    /// returns (copy index or None for the blank fallback, entry, abandoned slot).
    #[allow(clippy::type_complexity)]
    fn select(
        &mut self,
        entries: &[Option<OtaSelectEntry>; 2],
    ) -> PResult<Option<(Option<usize>, Option<OtaSelectEntry>, Option<Slot>)>, F> {
        let mut order: Vec<usize> = (0..2).filter(|&i| entries[i].is_some()).collect();
        order.sort_by_key(|&i| core::cmp::Reverse(entries[i].map(|e| e.seq)));
        let mut abandoned = None;
        for i in order {
            let Some(e) = entries[i] else { continue };
            // PENDING_VERIFY at boot means a reset before confirmation: ABORTED.
            if !e.state.bootable() || e.state == ImageState::PendingVerify {
                abandoned.get_or_insert(e.slot);
                continue;
            }
            if !self.slot_matches(e.slot, e.image_len, &e.image_sha256)? {
                abandoned.get_or_insert(e.slot);
                continue;
            }
            return Ok(Some((Some(i), Some(e), abandoned)));
        }
        if entries.iter().all(Option::is_none) && self.read_header(Slot::Ota0)?.is_some() {
            // Blank (or unreadable) otadata: ESP-IDF without a factory app boots ota_0.
            return Ok(Some((None, None, None)));
        }
        Ok(None)
    }

    /// The slot the next boot will choose (a dry run of [`Self::on_boot`]:
    /// nothing is written). `None` if nothing is bootable.
    pub fn boot_partition(&mut self) -> PResult<Option<Slot>, F> {
        let entries = self.read_otadata()?;
        Ok(self
            .select(&entries)?
            .map(|(_, e, _)| e.map_or(Slot::Ota0, |e| e.slot)))
    }

    /// The slot running now (after [`Self::on_boot`]).
    pub fn running_partition(&self) -> Option<Slot> {
        self.running.map(|r| r.slot)
    }

    /// The state of the running image (after [`Self::on_boot`]).
    pub fn running_state(&self) -> Option<ImageState> {
        self.running.map(|r| r.state)
    }

    /// The slot an update goes to: the one not running.
    pub fn inactive_partition(&self) -> PResult<Slot, F> {
        self.running
            .map(|r| r.slot.other())
            .ok_or(PartitionError::NotBooted)
    }

    /// The boot-time decision (what the bootloader does), applying the rollback
    /// state machine. Writes otadata: PENDING_VERIFY entries become ABORTED, a
    /// chosen NEW entry becomes PENDING_VERIFY.
    pub fn on_boot(&mut self) -> PResult<BootDecision, F> {
        self.running = None;
        self.update = None;
        let mut entries = self.read_otadata()?;
        for (i, slot) in entries.iter_mut().enumerate() {
            if let Some(e) = slot
                && e.state == ImageState::PendingVerify
            {
                e.state = ImageState::Aborted;
                let e = *e;
                self.write_entry(i, &e)?;
            }
        }
        let Some((copy, entry, abandoned)) = self.select(&entries)? else {
            return Ok(BootDecision::NoBootableImage);
        };
        let (Some(i), Some(mut e)) = (copy, entry) else {
            self.running = Some(Running {
                slot: Slot::Ota0,
                copy: None,
                state: ImageState::Undefined,
            });
            return Ok(BootDecision::Boot {
                slot: Slot::Ota0,
                state: ImageState::Undefined,
                rolled_back_from: None,
            });
        };
        if e.state == ImageState::New {
            e.state = ImageState::PendingVerify;
            self.write_entry(i, &e)?;
            self.running = Some(Running {
                slot: e.slot,
                copy: Some(i),
                state: e.state,
            });
            return Ok(BootDecision::TrialBoot { slot: e.slot });
        }
        self.running = Some(Running {
            slot: e.slot,
            copy: Some(i),
            state: e.state,
        });
        Ok(BootDecision::Boot {
            slot: e.slot,
            state: e.state,
            rolled_back_from: abandoned,
        })
    }

    /// Confirm the running image (PENDING_VERIFY -> VALID). A no-op for an
    /// image that is already VALID or UNDEFINED.
    pub fn mark_valid(&mut self) -> PResult<(), F> {
        let r = self.running.ok_or(PartitionError::NotBooted)?;
        if r.state != ImageState::PendingVerify {
            return Ok(());
        }
        let copy = r.copy.ok_or(PartitionError::NotBooted)?;
        let mut e = self.read_otadata()?[copy].ok_or(PartitionError::NotBooted)?;
        e.state = ImageState::Valid;
        self.write_entry(copy, &e)?;
        self.running = Some(Running {
            state: ImageState::Valid,
            ..r
        });
        Ok(())
    }

    /// Refuse the running image: mark it INVALID so the next boot chooses the
    /// previous one. Returns the slot that will boot next; the caller reboots.
    /// Fails with [`PartitionError::RollbackFailed`] (and writes nothing) when
    /// the other copy does not select a complete, bootable image in the other slot.
    pub fn mark_invalid_and_rollback(&mut self) -> PResult<Slot, F> {
        let r = self.running.ok_or(PartitionError::NotBooted)?;
        let copy = r.copy.ok_or(PartitionError::RollbackFailed)?;
        let entries = self.read_otadata()?;
        let mut mine = entries[copy].ok_or(PartitionError::RollbackFailed)?;
        let other = entries[1 - copy].ok_or(PartitionError::RollbackFailed)?;
        if other.slot == r.slot
            || !other.state.bootable()
            || other.state == ImageState::PendingVerify
            || !self.slot_matches(other.slot, other.image_len, &other.image_sha256)?
        {
            return Err(PartitionError::RollbackFailed);
        }
        mine.state = ImageState::Invalid;
        self.write_entry(copy, &mine)?;
        self.running = Some(Running {
            state: ImageState::Invalid,
            ..r
        });
        Ok(other.slot)
    }

    /// Open an update of the inactive slot. Nothing is written until data
    /// arrives; sectors are erased just before they are first programmed, a
    /// whole [`ERASE_BLOCK`] at once where it is aligned (in flash
    /// addresses) and inside the slot. Only the inactive slot is erased, so
    /// erasing ahead changes nothing about power loss.
    pub fn begin_update(&mut self) -> PResult<Slot, F> {
        let r = self.running.ok_or(PartitionError::NotBooted)?;
        if self.update.is_some() {
            return Err(PartitionError::UpdateInProgress);
        }
        if r.state == ImageState::PendingVerify {
            return Err(PartitionError::RunningNotConfirmed);
        }
        let ws = F::WRITE_SIZE.max(1);
        let chunk = 256usize.div_ceil(ws) * ws;
        self.update = Some(Update {
            slot: r.slot.other(),
            len: 0,
            programmed: 0,
            erased: 0,
            buf: Vec::with_capacity(chunk),
        });
        Ok(r.slot.other())
    }

    /// The slot being updated, if an update is open.
    pub fn update_slot(&self) -> Option<Slot> {
        self.update.as_ref().map(|u| u.slot)
    }

    /// Append bytes to the open update (buffered, programmed in aligned chunks).
    pub fn write_update(&mut self, mut data: &[u8]) -> PResult<(), F> {
        let slot_size = u64::from(self.layout.slot_size);
        let u = self.update.as_mut().ok_or(PartitionError::NoUpdate)?;
        let size = u.len + data.len() as u64;
        if size > slot_size {
            return Err(PartitionError::TooLarge {
                size,
                max: slot_size,
            });
        }
        let cap = u.buf.capacity();
        while !data.is_empty() {
            let u = self.update.as_mut().ok_or(PartitionError::NoUpdate)?;
            let n = (cap - u.buf.len()).min(data.len());
            u.buf.extend_from_slice(&data[..n]);
            u.len += n as u64;
            data = &data[n..];
            if u.buf.len() == cap {
                self.program_buffer()?;
            }
        }
        Ok(())
    }

    /// Program the buffered bytes (padded with 0xFF to the write size), erasing
    /// sectors first as needed.
    fn program_buffer(&mut self) -> PResult<(), F> {
        let base = self.layout.slot_offset::<F>(Slot::Ota0);
        let slot_size = u64::from(self.layout.slot_size);
        let mut u = self.update.take().ok_or(PartitionError::NoUpdate)?;
        let r = (|| {
            if u.buf.is_empty() {
                return Ok(());
            }
            let ws = F::WRITE_SIZE.max(1);
            let padded = u.buf.len().div_ceil(ws) * ws;
            u.buf.resize(padded, 0xFF);
            let end = u.programmed + padded as u64;
            if end > slot_size {
                return Err(PartitionError::TooLarge {
                    size: end,
                    max: slot_size,
                });
            }
            let slot_base = u64::from(base) + u.slot.index() as u64 * slot_size;
            while u.erased < end {
                let from = slot_base + u.erased;
                // A whole aligned block in one erase where the slot has it:
                // SPI NOR erases 64 KiB far faster than 16 sectors, and the
                // ESP-IDF flash driver does the same for aligned ranges.
                let block = ERASE_BLOCK.max(F::ERASE_SIZE as u64);
                let len = if block.is_multiple_of(F::ERASE_SIZE as u64)
                    && from.is_multiple_of(block)
                    && u.erased + block <= slot_size
                {
                    block
                } else {
                    F::ERASE_SIZE as u64
                };
                self.flash
                    .erase(from as u32, (from + len) as u32)
                    .map_err(PartitionError::Flash)?;
                u.erased += len;
            }
            self.flash
                .write((slot_base + u.programmed) as u32, &u.buf)
                .map_err(PartitionError::Flash)?;
            u.programmed = end;
            u.buf.clear();
            Ok(())
        })();
        self.update = Some(u);
        r
    }

    /// Flush the last bytes and close the update. Returns the slot and the
    /// number of bytes written. The slot is not selected yet: see [`Self::set_boot`].
    pub fn finish_update(&mut self) -> PResult<(Slot, u64), F> {
        self.program_buffer()?;
        let u = self.update.take().ok_or(PartitionError::NoUpdate)?;
        Ok((u.slot, u.len))
    }

    /// Give up the open update. The slot keeps whatever was written, but no
    /// otadata entry points at it.
    pub fn abort_update(&mut self) {
        self.update = None;
    }

    /// Select `slot` for the next boot (state NEW). The image is read back from
    /// flash, checked and its digest recorded. Writes the otadata copy that does
    /// not hold the running entry.
    pub fn set_boot(&mut self, slot: Slot) -> PResult<(), F> {
        self.set_boot_inner(slot, None)
    }

    /// Like [`Self::set_boot`], and refuse with [`PartitionError::BadImage`]
    /// unless the image read back from flash has the `expected` SHA-256.
    pub fn set_boot_checked(&mut self, slot: Slot, expected: &[u8; 32]) -> PResult<(), F> {
        self.set_boot_inner(slot, Some(expected))
    }

    fn set_boot_inner(&mut self, slot: Slot, expected: Option<&[u8; 32]>) -> PResult<(), F> {
        if self.update.as_ref().is_some_and(|u| u.slot == slot) {
            return Err(PartitionError::UpdateInProgress);
        }
        let (len, sha) = self.image_digest(slot)?.ok_or(PartitionError::BadImage)?;
        if expected.is_some_and(|x| *x != sha) {
            return Err(PartitionError::BadImage);
        }
        let entries = self.read_otadata()?;
        let copy = match self.running.and_then(|r| r.copy) {
            Some(c) => 1 - c,
            None => match entries {
                [None, _] => 0,
                [_, None] => 1,
                [Some(a), Some(b)] => usize::from(a.seq > b.seq),
            },
        };
        let max_seq = entries.iter().flatten().map(|e| e.seq).max().unwrap_or(0);
        let entry = OtaSelectEntry {
            seq: max_seq.wrapping_add(1).max(1),
            slot,
            state: ImageState::New,
            image_len: len,
            image_sha256: sha,
        };
        self.write_entry(copy, &entry)
    }

    /// Factory provisioning: erase otadata, write `image` to ota_0 and select it
    /// as VALID (seq 1). For first-time setup of a device (and tests).
    pub fn provision(&mut self, image: &[u8]) -> PResult<(), F> {
        if image.len() as u64 > u64::from(self.layout.slot_size) {
            return Err(PartitionError::TooLarge {
                size: image.len() as u64,
                max: u64::from(self.layout.slot_size),
            });
        }
        let es = F::ERASE_SIZE as u32;
        let o = self.layout.otadata_offset;
        self.flash
            .erase(o, o + 2 * es)
            .map_err(PartitionError::Flash)?;
        self.running = Some(Running {
            slot: Slot::Ota1,
            copy: None,
            state: ImageState::Valid,
        });
        self.begin_update()?;
        self.write_update(image)?;
        let (slot, _) = self.finish_update()?;
        let (len, sha) = self.image_digest(slot)?.ok_or(PartitionError::BadImage)?;
        self.running = None;
        self.write_entry(
            0,
            &OtaSelectEntry {
                seq: 1,
                slot,
                state: ImageState::Valid,
                image_len: len,
                image_sha256: sha,
            },
        )
    }
}
