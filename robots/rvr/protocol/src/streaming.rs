//! Sensor streaming: slot configuration, data notifications and normalisation.
//!
//! A host configures a slot (token 1-4 in the SDKs) on one processor with up
//! to five services, each at 8, 16 or 32 bits per attribute, then starts
//! streaming with a period. The robot then sends one data notification per
//! slot per period: a token byte (low nibble token, high nibble status) and,
//! for each configured service in order, each attribute as an unsigned
//! big-endian integer. Scaled attributes map to values by
//! `value = min + raw / (2^bits - 1) * (max - min)` with the ranges in
//! [`crate::constants::streaming::SERVICES`].

use core::fmt;

use crate::constants::{framing, streaming as table};
use crate::error::{DecodeError, EncodeError};
use crate::packet::Processor;
use crate::wire::{Reader, Writer};

/// Bits per attribute of a configured service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataSize {
    Bits8,
    Bits16,
    Bits32,
}

impl DataSize {
    /// Every size.
    pub const ALL: [DataSize; 3] = [DataSize::Bits8, DataSize::Bits16, DataSize::Bits32];

    /// The configure byte.
    pub const fn code(self) -> u8 {
        match self {
            DataSize::Bits8 => table::SIZE_8_BIT,
            DataSize::Bits16 => table::SIZE_16_BIT,
            DataSize::Bits32 => table::SIZE_32_BIT,
        }
    }

    /// The size of a configure byte.
    pub const fn from_code(code: u8) -> Option<DataSize> {
        match code {
            table::SIZE_8_BIT => Some(DataSize::Bits8),
            table::SIZE_16_BIT => Some(DataSize::Bits16),
            table::SIZE_32_BIT => Some(DataSize::Bits32),
            _ => None,
        }
    }

    /// Bytes per attribute.
    pub const fn bytes(self) -> usize {
        match self {
            DataSize::Bits8 => 1,
            DataSize::Bits16 => 2,
            DataSize::Bits32 => 4,
        }
    }

    /// Bits per attribute.
    pub const fn bits(self) -> u32 {
        self.bytes() as u32 * 8
    }

    /// Largest raw value, `2^bits - 1`.
    pub const fn max_raw(self) -> u32 {
        u32::MAX >> (32 - self.bits())
    }
}

/// A streaming service from the table in [`crate::constants::streaming::SERVICES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SensorService {
    Quaternion,
    Imu,
    Accelerometer,
    ColorDetection,
    Gyroscope,
    CoreTimeLower,
    Locator,
    Velocity,
    Speed,
    CoreTime,
    AmbientLight,
    Encoders,
}

impl SensorService {
    /// Every service, in id order.
    pub const ALL: [SensorService; 12] = [
        SensorService::Quaternion,
        SensorService::Imu,
        SensorService::Accelerometer,
        SensorService::ColorDetection,
        SensorService::Gyroscope,
        SensorService::CoreTimeLower,
        SensorService::Locator,
        SensorService::Velocity,
        SensorService::Speed,
        SensorService::CoreTime,
        SensorService::AmbientLight,
        SensorService::Encoders,
    ];

    /// The service id on the wire.
    pub const fn id(self) -> u16 {
        match self {
            SensorService::Quaternion => table::QUATERNION,
            SensorService::Imu => table::IMU,
            SensorService::Accelerometer => table::ACCELEROMETER,
            SensorService::ColorDetection => table::COLOR_DETECTION,
            SensorService::Gyroscope => table::GYROSCOPE,
            SensorService::CoreTimeLower => table::CORE_TIME_LOWER,
            SensorService::Locator => table::LOCATOR,
            SensorService::Velocity => table::VELOCITY,
            SensorService::Speed => table::SPEED,
            SensorService::CoreTime => table::CORE_TIME,
            SensorService::AmbientLight => table::AMBIENT_LIGHT,
            SensorService::Encoders => table::ENCODERS,
        }
    }

    /// The service with this id.
    pub fn from_id(id: u16) -> Option<SensorService> {
        SensorService::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Its row of the service table (id, name, processors, attribute ranges).
    pub fn spec(self) -> &'static table::ServiceSpec {
        // Invariant checked by a unit test: row i of the table has id i, and
        // ids run 0..=11 like `ALL`.
        &table::SERVICES[usize::from(self.id())]
    }

    /// Number of attributes.
    pub fn attribute_count(self) -> usize {
        self.spec().attributes.len()
    }

    /// `true` if `processor` serves this service.
    pub fn served_by(self, processor: Processor) -> bool {
        self.spec().nodes.contains(&processor.node())
    }
}

/// One service of a slot and its attribute size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamEntry {
    pub service: SensorService,
    pub size: DataSize,
}

/// A slot configuration: the payload of `configure_streaming_service`.
#[derive(Clone, Copy)]
pub struct StreamingConfig {
    token: u8,
    len: u8,
    entries: [StreamEntry; table::MAX_SERVICES_PER_SLOT],
}

impl StreamingConfig {
    /// An empty slot. `token` must be at most [`table::MAX_TOKEN`] (the SDKs use 1-4).
    pub const fn new(token: u8) -> Result<StreamingConfig, EncodeError> {
        if token > table::MAX_TOKEN {
            return Err(EncodeError::InvalidValue);
        }
        Ok(StreamingConfig {
            token,
            len: 0,
            entries: [StreamEntry {
                service: SensorService::Quaternion,
                size: DataSize::Bits8,
            }; table::MAX_SERVICES_PER_SLOT],
        })
    }

    /// Adds a service; at most [`table::MAX_SERVICES_PER_SLOT`].
    pub fn push(&mut self, service: SensorService, size: DataSize) -> Result<(), EncodeError> {
        let slot = self
            .entries
            .get_mut(usize::from(self.len))
            .ok_or(EncodeError::InvalidValue)?;
        *slot = StreamEntry { service, size };
        self.len += 1;
        Ok(())
    }

    /// Builder form of [`StreamingConfig::push`].
    pub fn with(mut self, service: SensorService, size: DataSize) -> Result<Self, EncodeError> {
        self.push(service, size)?;
        Ok(self)
    }

    /// The slot token.
    pub const fn token(&self) -> u8 {
        self.token
    }

    /// The configured services, in wire order.
    pub fn entries(&self) -> &[StreamEntry] {
        &self.entries[..usize::from(self.len)]
    }

    /// Length of the data (after the token byte) of a matching data notify.
    pub fn data_len(&self) -> usize {
        self.entries()
            .iter()
            .map(|e| e.service.attribute_count() * e.size.bytes())
            .sum()
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.token)?;
        for e in self.entries() {
            w.u16(e.service.id())?.u8(e.size.code())?;
        }
        Ok(())
    }

    /// Reads a configure payload. **Assumed** (firmware behaviour undocumented):
    /// tokens above [`table::MAX_TOKEN`], unknown service ids and unknown size
    /// codes are `BadValue` / `UnknownService`; more than five services is a
    /// bad length. Duplicate services are accepted.
    pub(crate) fn read(r: &mut Reader<'_>, len: usize) -> Result<StreamingConfig, DecodeError> {
        let config_bytes = len.saturating_sub(1);
        if len == 0
            || config_bytes > table::MAX_CONFIG_BYTES
            || !config_bytes.is_multiple_of(table::CONFIG_ENTRY_LEN)
        {
            return Err(DecodeError::BadLength { len });
        }
        let mut config = StreamingConfig::new(r.u8()?).map_err(|_| DecodeError::BadValue)?;
        while !r.is_empty() {
            let id = r.u16()?;
            let service =
                SensorService::from_id(id).ok_or(DecodeError::UnknownService { service_id: id })?;
            let size = DataSize::from_code(r.u8()?).ok_or(DecodeError::BadValue)?;
            config
                .push(service, size)
                .map_err(|_| DecodeError::BadLength { len })?;
        }
        Ok(config)
    }
}

impl PartialEq for StreamingConfig {
    fn eq(&self, other: &StreamingConfig) -> bool {
        self.token == other.token && self.entries() == other.entries()
    }
}

impl fmt::Debug for StreamingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingConfig")
            .field("token", &self.token)
            .field("entries", &self.entries())
            .finish()
    }
}

/// The status nibble of a data notify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamStatus {
    /// 0: the data is valid.
    Ok,
    /// 1: the data is invalid.
    InvalidData,
    /// Any other nibble value (0..=15).
    Other(u8),
}

impl StreamStatus {
    pub const fn from_nibble(nibble: u8) -> StreamStatus {
        match nibble & 0x0F {
            table::STATUS_OK => StreamStatus::Ok,
            table::STATUS_INVALID_DATA => StreamStatus::InvalidData,
            other => StreamStatus::Other(other),
        }
    }

    pub const fn to_nibble(self) -> u8 {
        match self {
            StreamStatus::Ok => table::STATUS_OK,
            StreamStatus::InvalidData => table::STATUS_INVALID_DATA,
            StreamStatus::Other(n) => n & 0x0F,
        }
    }
}

/// The body of a `streaming_service_data_notify`: token, status and raw data.
/// Decode it against the slot's [`StreamingConfig`] with [`StreamingData::decode`].
#[derive(Clone, Copy)]
pub struct StreamingData {
    token: u8,
    status: StreamStatus,
    len: u8,
    data: [u8; framing::MAX_PAYLOAD_LEN - 1],
}

impl StreamingData {
    /// Raw data for `token` (0..=15).
    pub fn new(token: u8, status: StreamStatus, data: &[u8]) -> Result<StreamingData, EncodeError> {
        if token > table::TOKEN_MASK || matches!(status, StreamStatus::Other(n) if n > 0x0F) {
            return Err(EncodeError::InvalidValue);
        }
        let mut out = StreamingData {
            token,
            status,
            len: 0,
            data: [0; framing::MAX_PAYLOAD_LEN - 1],
        };
        let dst = out
            .data
            .get_mut(..data.len())
            .ok_or(EncodeError::PayloadTooLong {
                len: data.len() + 1,
            })?;
        dst.copy_from_slice(data);
        out.len = data.len() as u8;
        Ok(out)
    }

    /// Encodes `sample` for the slot `config`: every configured service must
    /// have a value in `sample`. Scaled values are clamped to their range and
    /// rounded to the nearest raw step.
    pub fn from_sample(
        config: &StreamingConfig,
        status: StreamStatus,
        sample: &SensorSample,
    ) -> Result<StreamingData, EncodeError> {
        let mut w = Writer::new();
        for e in config.entries() {
            let values = sample
                .values(e.service, e.size)
                .ok_or(EncodeError::MissingSample {
                    service_id: e.service.id(),
                })?;
            for (attr, value) in e.service.spec().attributes.iter().zip(values) {
                w.uint(to_raw(attr.range, value, e.size), e.size.bytes())?;
            }
        }
        StreamingData::new(config.token(), status, w.finish().as_slice())
    }

    /// The slot token (low nibble of byte 0).
    pub const fn token(&self) -> u8 {
        self.token
    }

    /// The status (high nibble of byte 0).
    pub const fn status(&self) -> StreamStatus {
        self.status
    }

    /// The raw attribute bytes after the token byte.
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// Decodes the data against the slot's configuration, normalising each
    /// attribute to SI values. The status is not checked: see
    /// [`StreamingData::status`]. If a service is configured twice, the
    /// sample holds its later occurrence.
    pub fn decode(&self, config: &StreamingConfig) -> Result<SensorSample, DecodeError> {
        if self.token != config.token() {
            return Err(DecodeError::TokenMismatch {
                expected: config.token(),
                actual: self.token,
            });
        }
        let mut r = Reader::new(self.data());
        if self.data().len() != config.data_len() {
            return Err(DecodeError::BadLength {
                len: self.data().len() + 1,
            });
        }
        let mut sample = SensorSample::default();
        for e in config.entries() {
            let mut values = [0f64; table::MAX_ATTRIBUTES];
            for (attr, value) in e.service.spec().attributes.iter().zip(values.iter_mut()) {
                *value = from_raw(attr.range, r.uint(e.size.bytes())?, e.size);
            }
            sample.set(e.service, e.size, &values);
        }
        r.finish()?;
        Ok(sample)
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8((self.status.to_nibble() << table::STATUS_SHIFT) | self.token)?
            .bytes(self.data())?;
        Ok(())
    }

    pub(crate) fn read(bytes: &[u8]) -> Result<StreamingData, DecodeError> {
        let (&first, data) = bytes
            .split_first()
            .ok_or(DecodeError::BadLength { len: 0 })?;
        StreamingData::new(
            first & table::TOKEN_MASK,
            StreamStatus::from_nibble(first >> table::STATUS_SHIFT),
            data,
        )
        .map_err(|_| DecodeError::BadLength { len: bytes.len() })
    }
}

impl PartialEq for StreamingData {
    fn eq(&self, other: &StreamingData) -> bool {
        self.token == other.token && self.status == other.status && self.data() == other.data()
    }
}

impl fmt::Debug for StreamingData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingData")
            .field("token", &self.token)
            .field("status", &self.status)
            .field("data", &format_args!("{:02X?}", self.data()))
            .finish()
    }
}

/// Raw unsigned integer -> value: `min + raw / (2^bits - 1) * (max - min)`.
pub fn normalize(raw: u32, size: DataSize, min: f64, max: f64) -> f64 {
    min + f64::from(raw) / f64::from(size.max_raw()) * (max - min)
}

/// Value -> raw unsigned integer, the inverse of [`normalize`]:
/// `round((value - min) / (max - min) * (2^bits - 1))`, clamped to the range
/// (NaN maps to 0).
pub fn denormalize(value: f64, size: DataSize, min: f64, max: f64) -> u32 {
    let max_raw = f64::from(size.max_raw());
    let scaled = (value - min) / (max - min) * max_raw;
    if scaled.is_nan() || scaled <= 0.0 {
        0
    } else if scaled >= max_raw {
        size.max_raw()
    } else {
        // Non-negative and below 2^32: adding one half and truncating rounds
        // to nearest (core has no `f64::round` without std).
        (scaled + 0.5) as u32
    }
}

fn from_raw(range: table::Range, raw: u32, size: DataSize) -> f64 {
    match range {
        table::Range::Scaled { min, max } => normalize(raw, size, min, max),
        table::Range::Raw => f64::from(raw),
    }
}

fn to_raw(range: table::Range, value: f64, size: DataSize) -> u32 {
    match range {
        table::Range::Scaled { min, max } => denormalize(value, size, min, max),
        // Raw values are produced by `SensorSample::values` already truncated
        // to the size, as exact integers.
        table::Range::Raw => (value as u32) & size.max_raw(),
    }
}

/// Sign-extends the low `size` bits of `raw`.
fn sign_extend(raw: u32, size: DataSize) -> i32 {
    let shift = 32 - size.bits();
    ((raw << shift) as i32) >> shift
}

/// Unit quaternion (unitless, each -1..1).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quaternion {
    pub w: f32,
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

/// IMU attitude in degrees: pitch ±180, roll ±90, yaw ±180 (yaw 0 = forward,
/// positive to the left).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Attitude {
    pub pitch_deg: f32,
    pub roll_deg: f32,
    pub yaw_deg: f32,
}

/// A three-axis reading (accelerometer in g, gyroscope in deg/s).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Vector3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

/// A planar reading (locator in metres, velocity in m/s). Robot frame at the
/// last locator reset: +Y forward, +X right.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Vector2 {
    pub x: f32,
    pub y: f32,
}

/// Colour detection: R, G, B and palette index 0..255, confidence 0..1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ColorReading {
    pub r: f32,
    pub g: f32,
    pub b: f32,
    pub index: f32,
    pub confidence: f32,
}

/// Encoder counts. The stream carries unsigned integers; they are read as
/// two's complement of the configured width (**assumed**: the fact sheet says
/// signed counts wrap when read as unsigned, and does not document the
/// 8/16-bit case).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncoderTicks {
    pub left: i32,
    pub right: i32,
}

/// One decoded streaming sample: the services a slot carries are `Some`.
/// All values are SI (or the unit in each field's name).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SensorSample {
    pub quaternion: Option<Quaternion>,
    pub imu: Option<Attitude>,
    /// Accelerometer, g.
    pub accelerometer: Option<Vector3>,
    pub color: Option<ColorReading>,
    /// Gyroscope, deg/s.
    pub gyroscope: Option<Vector3>,
    /// Low 32 bits of the core time, ms (service 0x0005).
    pub core_time_lower_ms: Option<u32>,
    /// Locator position, m.
    pub locator: Option<Vector2>,
    /// Velocity, m/s.
    pub velocity: Option<Vector2>,
    /// Speed, m/s.
    pub speed_mps: Option<f32>,
    /// Core time, ms: `upper << 32 | lower` (service 0x0009; each half is
    /// truncated to the configured size, so use 32 bits).
    pub core_time_ms: Option<u64>,
    /// Ambient light, lux.
    pub ambient_light_lux: Option<f32>,
    pub encoders: Option<EncoderTicks>,
}

impl SensorSample {
    /// Stores one service's attribute values (normalised or raw) as typed fields.
    fn set(&mut self, service: SensorService, size: DataSize, v: &[f64; table::MAX_ATTRIBUTES]) {
        let f = |i: usize| v[i] as f32;
        match service {
            SensorService::Quaternion => {
                self.quaternion = Some(Quaternion {
                    w: f(0),
                    x: f(1),
                    y: f(2),
                    z: f(3),
                })
            }
            SensorService::Imu => {
                self.imu = Some(Attitude {
                    pitch_deg: f(0),
                    roll_deg: f(1),
                    yaw_deg: f(2),
                })
            }
            SensorService::Accelerometer => {
                self.accelerometer = Some(Vector3 {
                    x: f(0),
                    y: f(1),
                    z: f(2),
                })
            }
            SensorService::ColorDetection => {
                self.color = Some(ColorReading {
                    r: f(0),
                    g: f(1),
                    b: f(2),
                    index: f(3),
                    confidence: f(4),
                })
            }
            SensorService::Gyroscope => {
                self.gyroscope = Some(Vector3 {
                    x: f(0),
                    y: f(1),
                    z: f(2),
                })
            }
            SensorService::CoreTimeLower => self.core_time_lower_ms = Some(v[0] as u32),
            SensorService::Locator => self.locator = Some(Vector2 { x: f(0), y: f(1) }),
            SensorService::Velocity => self.velocity = Some(Vector2 { x: f(0), y: f(1) }),
            SensorService::Speed => self.speed_mps = Some(f(0)),
            SensorService::CoreTime => {
                self.core_time_ms = Some((u64::from(v[0] as u32) << 32) | u64::from(v[1] as u32))
            }
            SensorService::AmbientLight => self.ambient_light_lux = Some(f(0)),
            SensorService::Encoders => {
                self.encoders = Some(EncoderTicks {
                    left: sign_extend(v[0] as u32, size),
                    right: sign_extend(v[1] as u32, size),
                })
            }
        }
    }

    /// One service's attribute values, in wire order (raw attributes already
    /// truncated to `size`), or `None` if the sample lacks that service.
    fn values(
        &self,
        service: SensorService,
        size: DataSize,
    ) -> Option<[f64; table::MAX_ATTRIBUTES]> {
        let d = f64::from;
        let raw = |x: u32| f64::from(x & size.max_raw());
        Some(match service {
            SensorService::Quaternion => {
                let q = self.quaternion?;
                [d(q.w), d(q.x), d(q.y), d(q.z), 0.0]
            }
            SensorService::Imu => {
                let a = self.imu?;
                [d(a.pitch_deg), d(a.roll_deg), d(a.yaw_deg), 0.0, 0.0]
            }
            SensorService::Accelerometer => {
                let a = self.accelerometer?;
                [d(a.x), d(a.y), d(a.z), 0.0, 0.0]
            }
            SensorService::ColorDetection => {
                let c = self.color?;
                [d(c.r), d(c.g), d(c.b), d(c.index), d(c.confidence)]
            }
            SensorService::Gyroscope => {
                let g = self.gyroscope?;
                [d(g.x), d(g.y), d(g.z), 0.0, 0.0]
            }
            SensorService::CoreTimeLower => [raw(self.core_time_lower_ms?), 0.0, 0.0, 0.0, 0.0],
            SensorService::Locator => {
                let l = self.locator?;
                [d(l.x), d(l.y), 0.0, 0.0, 0.0]
            }
            SensorService::Velocity => {
                let v = self.velocity?;
                [d(v.x), d(v.y), 0.0, 0.0, 0.0]
            }
            SensorService::Speed => [d(self.speed_mps?), 0.0, 0.0, 0.0, 0.0],
            SensorService::CoreTime => {
                let t = self.core_time_ms?;
                [raw((t >> 32) as u32), raw(t as u32), 0.0, 0.0, 0.0]
            }
            SensorService::AmbientLight => [d(self.ambient_light_lux?), 0.0, 0.0, 0.0, 0.0],
            SensorService::Encoders => {
                let e = self.encoders?;
                [raw(e.left as u32), raw(e.right as u32), 0.0, 0.0, 0.0]
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_table_is_indexed_by_id() {
        for (i, spec) in table::SERVICES.iter().enumerate() {
            assert_eq!(usize::from(spec.id), i);
        }
        for s in SensorService::ALL {
            assert_eq!(s.spec().id, s.id());
            assert_eq!(SensorService::from_id(s.id()), Some(s));
            assert!(s.attribute_count() <= table::MAX_ATTRIBUTES);
        }
        assert_eq!(SensorService::from_id(0x000C), None);
    }

    #[test]
    fn normalize_endpoints() {
        for size in DataSize::ALL {
            assert_eq!(normalize(0, size, -16000.0, 16000.0), -16000.0);
            assert_eq!(normalize(size.max_raw(), size, -16000.0, 16000.0), 16000.0);
            assert_eq!(denormalize(-16000.0, size, -16000.0, 16000.0), 0);
            assert_eq!(
                denormalize(16000.0, size, -16000.0, 16000.0),
                size.max_raw()
            );
            assert_eq!(denormalize(1e9, size, -1.0, 1.0), size.max_raw());
            assert_eq!(denormalize(-1e9, size, -1.0, 1.0), 0);
            assert_eq!(denormalize(f64::NAN, size, -1.0, 1.0), 0);
        }
    }

    #[test]
    fn sign_extension() {
        assert_eq!(sign_extend(0xFFFF_FFFF, DataSize::Bits32), -1);
        assert_eq!(sign_extend(0xFFFF, DataSize::Bits16), -1);
        assert_eq!(sign_extend(0x7FFF, DataSize::Bits16), 0x7FFF);
        assert_eq!(sign_extend(0x80, DataSize::Bits8), -128);
    }
}
