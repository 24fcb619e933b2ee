//! Typed values shared by commands, responses and notifications: inline
//! byte strings, text, versions, LED values, colour palettes, and the small
//! enums and flag sets of the newer commands. All fixed-capacity, no
//! allocation.

use core::fmt;

use crate::constants::{api_and_shell, drive, io, sensor, text};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Writer};

/// Up to `N` bytes stored inline (e.g. the data of `echo`).
#[derive(Clone, Copy)]
pub struct Bytes<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Bytes<N> {
    /// No bytes.
    pub const EMPTY: Bytes<N> = Bytes {
        len: 0,
        bytes: [0; N],
    };

    /// A copy of `data`; [`EncodeError::InvalidValue`] if it is longer than `N`.
    pub fn new(data: &[u8]) -> Result<Bytes<N>, EncodeError> {
        let mut out = Bytes::EMPTY;
        let dst = out
            .bytes
            .get_mut(..data.len())
            .ok_or(EncodeError::InvalidValue)?;
        dst.copy_from_slice(data);
        out.len = u8::try_from(data.len()).map_err(|_| EncodeError::InvalidValue)?;
        Ok(out)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// `true` if there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> PartialEq for Bytes<N> {
    fn eq(&self, other: &Bytes<N>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for Bytes<N> {}

impl<const N: usize> fmt::Debug for Bytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X?}", self.as_slice())
    }
}

/// The data of `echo`: up to 16 bytes.
pub type EchoData = Bytes<{ api_and_shell::ECHO_MAX_LEN }>;

/// UTF-8 text without NUL bytes, up to [`text::MAX_TEXT_LEN`] bytes: the
/// string outputs (MAC address, processor name, SKU, advertising name).
///
/// On the wire a text is every byte to the end of the payload (how the Python
/// SDK unpacks `std::string`). The twin sends no terminator; decoding stops
/// at the first NUL, since the SDK docstrings call some of these strings
/// null-terminated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text(Bytes<{ text::MAX_TEXT_LEN }>);

impl Text {
    /// The text `s`; [`EncodeError::InvalidValue`] if it holds a NUL or is too long.
    pub fn new(s: &str) -> Result<Text, EncodeError> {
        if s.as_bytes().contains(&text::TERMINATOR) {
            return Err(EncodeError::InvalidValue);
        }
        Bytes::new(s.as_bytes()).map(Text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Built only from a `&str` or from bytes checked as UTF-8.
        core::str::from_utf8(self.0.as_slice()).unwrap_or_default()
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(self.0.as_slice())?;
        Ok(())
    }

    /// Reads the rest of the payload: up to the first NUL, UTF-8 (else
    /// `BadValue`), at most [`text::MAX_TEXT_LEN`] bytes (else `BadLength`).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Text, DecodeError> {
        let rest = r.rest();
        let end = rest
            .iter()
            .position(|&b| b == text::TERMINATOR)
            .unwrap_or(rest.len());
        let s = core::str::from_utf8(&rest[..end]).map_err(|_| DecodeError::BadValue)?;
        Text::new(s).map_err(|_| DecodeError::BadLength { len: rest.len() })
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A firmware or bootloader version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    pub revision: u16,
}

impl Version {
    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u16(self.major)?.u16(self.minor)?.u16(self.revision)?;
        Ok(())
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Version, DecodeError> {
        Ok(Version {
            major: r.u16()?,
            minor: r.u16()?,
            revision: r.u16()?,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)
    }
}

/// One of the two drive motors: the current-sense amplifier id and the motor
/// index of the stall notify and `get_motor_temperature` (0 left, 1 right).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Motor {
    Left,
    Right,
}

impl Motor {
    /// Both motors, in index order.
    pub const BOTH: [Motor; 2] = [Motor::Left, Motor::Right];

    pub const fn code(self) -> u8 {
        match self {
            Motor::Left => drive::MOTOR_INDEX_LEFT,
            Motor::Right => drive::MOTOR_INDEX_RIGHT,
        }
    }

    pub const fn from_code(code: u8) -> Option<Motor> {
        match code {
            drive::MOTOR_INDEX_LEFT => Some(Motor::Left),
            drive::MOTOR_INDEX_RIGHT => Some(Motor::Right),
            _ => None,
        }
    }

    /// 0 for the left motor, 1 for the right (for indexing per-motor arrays).
    pub const fn index(self) -> usize {
        self.code() as usize
    }
}

/// Flags of `gyro_max_notify`: which axes went beyond the gyro's range, and
/// in which direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GyroMaxFlags(u8);

impl GyroMaxFlags {
    pub const NONE: GyroMaxFlags = GyroMaxFlags(0);
    pub const PLUS_X: GyroMaxFlags = GyroMaxFlags(sensor::GYRO_MAX_PLUS_X);
    pub const MINUS_X: GyroMaxFlags = GyroMaxFlags(sensor::GYRO_MAX_MINUS_X);
    pub const PLUS_Y: GyroMaxFlags = GyroMaxFlags(sensor::GYRO_MAX_PLUS_Y);
    pub const MINUS_Y: GyroMaxFlags = GyroMaxFlags(sensor::GYRO_MAX_MINUS_Y);
    pub const PLUS_Z: GyroMaxFlags = GyroMaxFlags(sensor::GYRO_MAX_PLUS_Z);
    pub const MINUS_Z: GyroMaxFlags = GyroMaxFlags(sensor::GYRO_MAX_MINUS_Z);

    /// `None` if an undefined bit is set (**assumed** invalid).
    pub const fn from_bits(bits: u8) -> Option<GyroMaxFlags> {
        if bits & !sensor::GYRO_MAX_FLAGS_DEFINED == 0 {
            Some(GyroMaxFlags(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: GyroMaxFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for GyroMaxFlags {
    type Output = GyroMaxFlags;
    fn bitor(self, rhs: GyroMaxFlags) -> GyroMaxFlags {
        GyroMaxFlags(self.0 | rhs.0)
    }
}

/// Flags of `set_locator_flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocatorFlags {
    /// Keep the X-Y axes of start-up instead of re-orienting them at every
    /// yaw reset (bit 0).
    pub auto_calibrate: bool,
}

impl LocatorFlags {
    pub const fn bits(self) -> u8 {
        if self.auto_calibrate {
            sensor::LOCATOR_FLAG_AUTO_CALIBRATE
        } else {
            0
        }
    }

    /// `None` if an undefined bit is set (**assumed** invalid).
    pub const fn from_bits(bits: u8) -> Option<LocatorFlags> {
        if bits & !sensor::LOCATOR_FLAGS_DEFINED != 0 {
            return None;
        }
        Some(LocatorFlags {
            auto_calibrate: bits & sensor::LOCATOR_FLAG_AUTO_CALIBRATE != 0,
        })
    }
}

/// The bot-to-bot infrared readings: one byte per receiver, packed into a
/// u32 with front-left in the low byte, then front-right, back-right,
/// back-left (Python SDK docstring of `get_bot_to_bot_infrared_readings`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InfraredReadings {
    pub front_left: u8,
    pub front_right: u8,
    pub back_right: u8,
    pub back_left: u8,
}

impl InfraredReadings {
    /// The u32 on the wire.
    pub const fn to_bits(self) -> u32 {
        u32::from_le_bytes([
            self.front_left,
            self.front_right,
            self.back_right,
            self.back_left,
        ])
    }

    /// The readings of a wire u32.
    pub const fn from_bits(bits: u32) -> InfraredReadings {
        let [front_left, front_right, back_right, back_left] = bits.to_le_bytes();
        InfraredReadings {
            front_left,
            front_right,
            back_right,
            back_left,
        }
    }
}

/// The body of `color_detection_notify`: the colour seen, how sure the robot
/// is, and the palette index it matched ([`io::UNIDENTIFIED_COLOR`] if none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ColorDetection {
    pub red: u8,
    pub green: u8,
    pub blue: u8,
    /// 0..=255.
    pub confidence: u8,
    /// Palette index, or [`io::UNIDENTIFIED_COLOR`].
    pub classification: u8,
}

/// The brightness values of `set_all_leds`: a mask of LED channels and one
/// value per set bit, in bit order (lowest bit first).
#[derive(Clone, Copy)]
pub struct LedValues {
    mask: u32,
    values: [u8; io::MAX_LED_VALUES],
}

impl LedValues {
    /// The LEDs of `mask` set to `values`; [`EncodeError::InvalidValue`]
    /// unless there is exactly one value per set bit.
    pub fn new(mask: u32, values: &[u8]) -> Result<LedValues, EncodeError> {
        if values.len() != mask.count_ones() as usize {
            return Err(EncodeError::InvalidValue);
        }
        let mut out = LedValues {
            mask,
            values: [0; io::MAX_LED_VALUES],
        };
        out.values[..values.len()].copy_from_slice(values);
        Ok(out)
    }

    /// The same value on every LED of `mask`.
    pub fn uniform(mask: u32, value: u8) -> LedValues {
        LedValues {
            mask,
            values: [value; io::MAX_LED_VALUES],
        }
    }

    /// The channel mask.
    pub const fn mask(&self) -> u32 {
        self.mask
    }

    /// One value per set bit, lowest bit first.
    pub fn values(&self) -> &[u8] {
        &self.values[..self.mask.count_ones() as usize]
    }

    /// (channel, value) pairs, lowest channel first.
    pub fn channels(&self) -> impl Iterator<Item = (u32, u8)> + '_ {
        (0..32u32)
            .filter(move |bit| self.mask & (1 << bit) != 0)
            .zip(self.values().iter().copied())
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u32(self.mask)?.bytes(self.values())?;
        Ok(())
    }

    /// Reads the payload: the mask, then exactly one byte per set bit (else
    /// `BadLength`: the SDK docstring says a set bit must have a value).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<LedValues, DecodeError> {
        let mask = r.u32()?;
        let rest = r.rest();
        LedValues::new(mask, rest).map_err(|_| DecodeError::BadLength {
            len: rest.len() + 4,
        })
    }
}

impl PartialEq for LedValues {
    fn eq(&self, other: &LedValues) -> bool {
        self.mask == other.mask && self.values() == other.values()
    }
}

impl fmt::Debug for LedValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedValues")
            .field("mask", &format_args!("{:#010x}", self.mask))
            .field("values", &self.values())
            .finish()
    }
}

/// One colour palette slot: its index and colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PaletteEntry {
    pub index: u8,
    pub red: u8,
    pub green: u8,
    pub blue: u8,
}

/// A colour palette: up to 12 assigned slots, each (index, R, G, B) on the
/// wire (Python SDK docstring of `set_active_color_palette`).
#[derive(Clone, Copy)]
pub struct ColorPalette {
    len: u8,
    entries: [PaletteEntry; io::MAX_PALETTE_ENTRIES],
}

impl ColorPalette {
    /// No slot assigned.
    pub const EMPTY: ColorPalette = ColorPalette {
        len: 0,
        entries: [PaletteEntry {
            index: 0,
            red: 0,
            green: 0,
            blue: 0,
        }; io::MAX_PALETTE_ENTRIES],
    };

    /// A palette of `entries`; [`EncodeError::InvalidValue`] beyond 12.
    pub fn new(entries: &[PaletteEntry]) -> Result<ColorPalette, EncodeError> {
        let mut out = ColorPalette::EMPTY;
        out.entries
            .get_mut(..entries.len())
            .ok_or(EncodeError::InvalidValue)?
            .copy_from_slice(entries);
        out.len = entries.len() as u8;
        Ok(out)
    }

    /// The assigned slots, in wire order.
    pub fn entries(&self) -> &[PaletteEntry] {
        &self.entries[..usize::from(self.len)]
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        for e in self.entries() {
            w.u8(e.index)?.u8(e.red)?.u8(e.green)?.u8(e.blue)?;
        }
        Ok(())
    }

    /// Reads the rest of the payload: whole entries, at most 12 (else `BadLength`).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<ColorPalette, DecodeError> {
        let len = r.remaining();
        if !len.is_multiple_of(io::PALETTE_ENTRY_LEN)
            || len > io::MAX_PALETTE_ENTRIES * io::PALETTE_ENTRY_LEN
        {
            return Err(DecodeError::BadLength { len });
        }
        let mut out = ColorPalette::EMPTY;
        while !r.is_empty() {
            out.entries[usize::from(out.len)] = PaletteEntry {
                index: r.u8()?,
                red: r.u8()?,
                green: r.u8()?,
                blue: r.u8()?,
            };
            out.len += 1;
        }
        Ok(out)
    }
}

impl PartialEq for ColorPalette {
    fn eq(&self, other: &ColorPalette) -> bool {
        self.entries() == other.entries()
    }
}

impl fmt::Debug for ColorPalette {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

/// One entry of a colour identification report: a palette index and how
/// well the colour matches it (0..=255).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ColorMatch {
    pub index: u8,
    pub confidence: u8,
}

/// The answer to `get_color_identification_report`: the palette entries a
/// colour matches above the asked threshold, up to 12 (index, confidence)
/// pairs (Python SDK docstring).
#[derive(Clone, Copy)]
pub struct ColorMatches {
    len: u8,
    matches: [ColorMatch; io::MAX_PALETTE_ENTRIES],
}

impl ColorMatches {
    /// No match.
    pub const EMPTY: ColorMatches = ColorMatches {
        len: 0,
        matches: [ColorMatch {
            index: 0,
            confidence: 0,
        }; io::MAX_PALETTE_ENTRIES],
    };

    /// A report of `matches`; [`EncodeError::InvalidValue`] beyond 12.
    pub fn new(matches: &[ColorMatch]) -> Result<ColorMatches, EncodeError> {
        let mut out = ColorMatches::EMPTY;
        out.matches
            .get_mut(..matches.len())
            .ok_or(EncodeError::InvalidValue)?
            .copy_from_slice(matches);
        out.len = matches.len() as u8;
        Ok(out)
    }

    /// The matches, in wire order.
    pub fn matches(&self) -> &[ColorMatch] {
        &self.matches[..usize::from(self.len)]
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        for m in self.matches() {
            w.u8(m.index)?.u8(m.confidence)?;
        }
        Ok(())
    }

    /// Reads the rest of the payload: whole pairs, at most 12 (else `BadLength`).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<ColorMatches, DecodeError> {
        let len = r.remaining();
        if !len.is_multiple_of(io::REPORT_ENTRY_LEN)
            || len > io::MAX_PALETTE_ENTRIES * io::REPORT_ENTRY_LEN
        {
            return Err(DecodeError::BadLength { len });
        }
        let mut out = ColorMatches::EMPTY;
        while !r.is_empty() {
            out.matches[usize::from(out.len)] = ColorMatch {
                index: r.u8()?,
                confidence: r.u8()?,
            };
            out.len += 1;
        }
        Ok(out)
    }
}

impl PartialEq for ColorMatches {
    fn eq(&self, other: &ColorMatches) -> bool {
        self.matches() == other.matches()
    }
}

impl fmt::Debug for ColorMatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.matches()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infrared_readings_pack_front_left_in_the_low_byte() {
        let r = InfraredReadings {
            front_left: 0x11,
            front_right: 0x22,
            back_right: 0x33,
            back_left: 0x44,
        };
        assert_eq!(r.to_bits(), 0x4433_2211);
        assert_eq!(InfraredReadings::from_bits(0x4433_2211), r);
    }

    #[test]
    fn text_refuses_nul_and_overlong() {
        assert_eq!(Text::new("a\0b"), Err(EncodeError::InvalidValue));
        let long = [b'x'; text::MAX_TEXT_LEN + 1];
        let long = core::str::from_utf8(&long).unwrap();
        assert_eq!(Text::new(long), Err(EncodeError::InvalidValue));
        assert_eq!(Text::new("RV-5256").unwrap().as_str(), "RV-5256");
    }

    #[test]
    fn led_values_need_one_value_per_bit() {
        assert!(LedValues::new(0b101, &[1, 2]).is_ok());
        assert_eq!(
            LedValues::new(0b101, &[1]).err(),
            Some(EncodeError::InvalidValue)
        );
        let v = LedValues::new(0b1010, &[7, 9]).unwrap();
        assert!(v.channels().eq([(1, 7), (3, 9)]));
    }
}
