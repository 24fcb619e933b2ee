//! The virtual hardware of a fleet device: NOR flash in RAM with an
//! erase/program timing model and power cuts, the downloader that serves
//! presigned URLs in virtual time, the device's MQTT session and its delay.
//! Each implements the HAL trait the OTA client is written against.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash, check_erase, check_read, check_write,
};
use ota_client::image::HEADER_LEN;
use twinrig_hal::{DownloadError, DownloadInfo, Downloader};
use twinrig_sim::net::SimMqttClient;
use twinrig_sim::{MICROS, MILLIS, Nanos, SECONDS, SimHandle};

use crate::cloud_twin::CloudTwin;

/// Erase sector of the simulated flash (ESP32: 4 KiB), shared with real flash.
pub const SECTOR: usize = twinrig_hal::flash::ERASE_SIZE;
/// Block of the simulated flash: the large erase unit (SPI NOR: 64 KiB).
pub const BLOCK: usize = ota_client::partitions::ERASE_BLOCK as usize;
/// Program page of the simulated flash (SPI NOR: 256 bytes).
pub const PAGE: usize = 256;
/// Write granularity of the simulated flash (ESP32: 4 bytes), shared with real flash.
pub const WORD: usize = twinrig_hal::flash::WRITE_SIZE;

// ---------------------------------------------------------------------------
// Flash

/// How long flash operations take, in virtual time. The flash calls are
/// synchronous (`embedded-storage`), as on a board where the CPU waits for
/// the SPI flash: the time is owed and paid at the device's next await
/// ([`Busy`]). The defaults are assumed from typical SPI NOR datasheet
/// values (Winbond W25Q64JV typicals: 4 KiB sector erase 45 ms, 64 KiB block
/// erase 150 ms, 256-byte page program 0.4 ms) and an ESP32 reading flash in
/// quad I/O at 80 MHz (40 MB/s); none was measured here. SHA-256 CPU time is
/// not modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashTiming {
    /// Erasing one [`SECTOR`].
    pub sector_erase_ns: Nanos,
    /// Erasing one aligned [`BLOCK`] in one command.
    pub block_erase_ns: Nanos,
    /// Programming (part of) one [`PAGE`].
    pub page_program_ns: Nanos,
    /// Reading, bytes per second (0: reads take no time).
    pub read_bytes_per_s: u64,
}

impl Default for FlashTiming {
    fn default() -> Self {
        FlashTiming {
            sector_erase_ns: 45 * MILLIS,
            block_erase_ns: 150 * MILLIS,
            page_program_ns: 400 * MICROS,
            read_bytes_per_s: 40_000_000,
        }
    }
}

impl FlashTiming {
    /// No time at all (for probes that are not the device).
    pub const INSTANT: FlashTiming = FlashTiming {
        sector_erase_ns: 0,
        block_erase_ns: 0,
        page_program_ns: 0,
        read_bytes_per_s: 0,
    };

    /// Erasing `[from, to)` (sector-aligned): a block command for every
    /// aligned whole [`BLOCK`], a sector command for the rest, as ESP-IDF's
    /// `esp_flash_erase_region` splits a range.
    pub fn erase_ns(&self, from: u64, to: u64) -> Nanos {
        let (block, sector) = (BLOCK as u64, SECTOR as u64);
        let mut at = from;
        let mut ns = 0;
        while at < to {
            if at.is_multiple_of(block) && to - at >= block {
                ns += self.block_erase_ns;
                at += block;
            } else {
                ns += self.sector_erase_ns;
                at += sector;
            }
        }
        ns
    }

    /// Programming `len` bytes at `offset`: one program per page touched.
    pub fn write_ns(&self, offset: u64, len: u64) -> Nanos {
        if len == 0 {
            return 0;
        }
        let pages = (offset + len).div_ceil(PAGE as u64) - offset / PAGE as u64;
        pages * self.page_program_ns
    }

    /// Reading `len` bytes.
    pub fn read_ns(&self, len: u64) -> Nanos {
        if self.read_bytes_per_s == 0 {
            return 0;
        }
        let ns = u128::from(len) * u128::from(SECONDS);
        u64::try_from(ns.div_ceil(u128::from(self.read_bytes_per_s))).unwrap_or(u64::MAX)
    }
}

/// Virtual time a device owes for synchronous work (flash operations), paid
/// at its next await: the download, an MQTT publish or a delay.
#[derive(Debug, Clone, Default)]
pub struct Busy(Rc<Cell<Nanos>>);

impl Busy {
    /// Owe `ns` more.
    pub fn add(&self, ns: Nanos) {
        self.0.set(self.0.get().saturating_add(ns));
    }

    /// Forgets what is owed: a power cut stopped the CPU mid-operation.
    pub fn forgive(&self) {
        self.0.set(0);
    }

    /// What is owed now.
    pub fn owed(&self) -> Nanos {
        self.0.get()
    }

    /// Let the owed time pass.
    pub async fn pay(&self, handle: &SimHandle) {
        let ns = self.0.replace(0);
        if ns > 0 {
            handle.sleep(ns).await;
        }
    }
}

/// A power cut armed on a device: the flash operation (erase or write,
/// counted from when it was armed, 1-based) during which power fails.
#[derive(Debug, Default)]
pub struct Power {
    cut_at: Cell<Option<u64>>,
    ops: Cell<u64>,
    lost: Cell<bool>,
}

impl Power {
    /// Fail power during the `op`-th erase or write from now.
    pub fn arm(&self, op: u64) {
        self.ops.set(0);
        self.cut_at.set(Some(op.max(1)));
    }

    /// Power has failed (the device is dead until it is restarted).
    pub fn lost(&self) -> bool {
        self.lost.get()
    }

    /// Power is back (after a restart); the cut does not repeat.
    pub fn restore(&self) {
        self.lost.set(false);
        self.cut_at.set(None);
    }

    /// Count an erase/write; `true` if power fails during it.
    fn tick(&self) -> bool {
        let Some(at) = self.cut_at.get() else {
            return false;
        };
        let n = self.ops.get() + 1;
        self.ops.set(n);
        if n == at {
            self.lost.set(true);
            self.cut_at.set(None);
            return true;
        }
        false
    }
}

/// A NOR flash in RAM: erased bytes read 0xFF, programming only clears bits,
/// erase works on whole sectors of [`SECTOR`] bytes, writes on [`WORD`]s.
/// Clones share the bytes (a probe can read what the device wrote; the bytes
/// survive the device task being dropped at a power cut). Every operation
/// adds its [`FlashTiming`] to the device's [`Busy`]. With [`Power`] lost,
/// every operation fails; the one during which power fails is torn: half
/// of its bytes are erased or programmed, the rest untouched.
#[derive(Debug, Clone)]
pub struct RamFlash {
    data: Rc<RefCell<Vec<u8>>>,
    timing: FlashTiming,
    busy: Busy,
    power: Rc<Power>,
}

impl RamFlash {
    /// An erased flash of `size` bytes, rounded up to whole sectors, whose
    /// operations take no time.
    pub fn new(size: usize) -> Self {
        RamFlash {
            data: Rc::new(RefCell::new(vec![0xFF; size.div_ceil(SECTOR) * SECTOR])),
            timing: FlashTiming::INSTANT,
            busy: Busy::default(),
            power: Rc::new(Power::default()),
        }
    }

    /// The same bytes, timed by `timing` into `busy`, cut by `power`.
    pub fn timed(&self, timing: FlashTiming, busy: Busy, power: Rc<Power>) -> Self {
        RamFlash {
            data: self.data.clone(),
            timing,
            busy,
            power,
        }
    }

    /// The same bytes, untimed and never cut (to inspect a device's flash).
    pub fn probe(&self) -> Self {
        self.timed(
            FlashTiming::INSTANT,
            Busy::default(),
            Rc::new(Power::default()),
        )
    }

    /// A copy of the whole content.
    pub fn bytes(&self) -> Vec<u8> {
        self.data.borrow().clone()
    }
}

impl ErrorType for RamFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len())?;
        if self.power.lost() {
            return Err(NorFlashErrorKind::Other);
        }
        let start = offset as usize;
        bytes.copy_from_slice(&self.data.borrow()[start..start + bytes.len()]);
        self.busy.add(self.timing.read_ns(bytes.len() as u64));
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.borrow().len()
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to)?;
        if self.power.lost() {
            return Err(NorFlashErrorKind::Other);
        }
        let torn = self.power.tick();
        let (from, to) = (from as usize, to as usize);
        let end = if torn { from + (to - from) / 2 } else { to };
        self.data.borrow_mut()[from..end].fill(0xFF);
        self.busy.add(
            self.timing
                .erase_ns(from as u64, end.max(from + SECTOR).min(to) as u64),
        );
        if torn {
            return Err(NorFlashErrorKind::Other);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len())?;
        if self.power.lost() {
            return Err(NorFlashErrorKind::Other);
        }
        let torn = self.power.tick();
        let n = if torn { bytes.len() / 2 } else { bytes.len() };
        let start = offset as usize;
        let mut data = self.data.borrow_mut();
        for (cell, b) in data[start..start + n].iter_mut().zip(&bytes[..n]) {
            *cell &= *b;
        }
        self.busy
            .add(self.timing.write_ns(u64::from(offset), bytes.len() as u64));
        if torn {
            return Err(NorFlashErrorKind::Other);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Downloader

/// Downloads from the cloud twin's firmware registry on virtual time, as a
/// streaming HTTPS GET: `open` (a HEAD) and the first read of a stream each
/// wait `latency` (request to first byte); reads that continue where the
/// last one ended then arrive at `bandwidth` only, and a read anywhere else
/// (a resume after an error) is a new ranged request with its own latency.
/// Every call checks the presigned URL at the cloud's current time, and
/// first pays the device's [`Busy`] time (the CPU was writing flash).
pub struct SimDownloader {
    handle: SimHandle,
    cloud: Rc<CloudTwin>,
    latency: Nanos,
    bandwidth_bps: u64,
    /// Bad download fault: flip the image byte at this fraction of the body.
    corrupt: Option<f64>,
    busy: Busy,
    power: Rc<Power>,
    /// Where the open stream continues: (url, next offset).
    stream: RefCell<Option<(String, u64)>>,
}

impl SimDownloader {
    /// A downloader with `latency` per request and `bandwidth_bps`
    /// (0: no transfer time); `corrupt` flips one body byte of every image.
    pub fn new(
        handle: &SimHandle,
        cloud: Rc<CloudTwin>,
        latency: Nanos,
        bandwidth_bps: u64,
        corrupt: Option<f64>,
    ) -> Self {
        SimDownloader {
            handle: handle.clone(),
            cloud,
            latency,
            bandwidth_bps,
            corrupt,
            busy: Busy::default(),
            power: Rc::new(Power::default()),
            stream: RefCell::new(None),
        }
    }

    /// Pay `busy` before each call; stall for good once `power` is lost.
    pub fn on_device(mut self, busy: Busy, power: Rc<Power>) -> Self {
        self.busy = busy;
        self.power = power;
        self
    }

    fn with_image<T>(&self, url: &str, f: impl FnOnce(&[u8]) -> T) -> Result<T, DownloadError> {
        use twinrig_cloud::registry::RegistryError as E;
        let registry = self.cloud.registry().borrow();
        match registry.fetch(url, self.cloud.now_s()) {
            Ok(fw) => Ok(f(&fw.image)),
            Err(E::Expired { .. }) => Err(DownloadError::Expired),
            Err(E::BadSignature) => Err(DownloadError::Forbidden),
            Err(E::NotFound { .. }) => Err(DownloadError::NotFound),
            Err(_) => Err(DownloadError::Other),
        }
    }

    /// Transfer time of `bytes` at the model's bandwidth.
    pub fn transfer_ns(&self, bytes: usize) -> Nanos {
        if self.bandwidth_bps == 0 {
            return 0;
        }
        let bits = bytes as u128 * 8 * u128::from(SECONDS);
        u64::try_from(bits.div_ceil(u128::from(self.bandwidth_bps))).unwrap_or(u64::MAX)
    }

    async fn device_turn(&self) {
        self.busy.pay(&self.handle).await;
        if self.power.lost() {
            std::future::pending::<()>().await;
        }
    }
}

impl Downloader for SimDownloader {
    async fn open(&self, url: &str) -> Result<DownloadInfo, DownloadError> {
        self.device_turn().await;
        self.stream.replace(None);
        self.handle.sleep(self.latency).await;
        let total_len = self.with_image(url, |img| img.len() as u64)?;
        Ok(DownloadInfo { total_len })
    }

    async fn read_chunk(
        &self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, DownloadError> {
        self.device_turn().await;
        let total = self.with_image(url, |img| img.len() as u64)?;
        let n = total.saturating_sub(offset).min(buf.len() as u64) as usize;
        let continues = self
            .stream
            .borrow()
            .as_ref()
            .is_some_and(|(u, at)| u == url && *at == offset);
        let wait = if continues { 0 } else { self.latency };
        self.stream.replace(None);
        self.handle
            .sleep(wait.saturating_add(self.transfer_ns(n)))
            .await;
        // Checked again at the response: a URL may expire mid-transfer.
        self.with_image(url, |img| {
            let start = offset as usize;
            buf[..n].copy_from_slice(&img[start..start + n]);
        })?;
        self.stream
            .replace(Some((url.to_owned(), offset + n as u64)));
        if let Some(fraction) = self.corrupt {
            let body = total.saturating_sub(HEADER_LEN as u64);
            let at = HEADER_LEN as u64 + ((body as f64 * fraction) as u64).min(body.max(1) - 1);
            if (offset..offset + n as u64).contains(&at) {
                buf[(at - offset) as usize] ^= 0xFF;
            }
        }
        Ok(n)
    }
}

/// The device's MQTT session: publishes and subscribes first pay the
/// device's [`Busy`] time; once power is lost nothing more leaves the device
/// and nothing arrives (the calls never complete).
#[derive(Clone)]
pub struct DeviceMqtt {
    inner: SimMqttClient,
    handle: SimHandle,
    busy: Busy,
    power: Rc<Power>,
}

impl DeviceMqtt {
    /// The device's session `inner`, on the device's CPU time and power.
    pub fn new(inner: SimMqttClient, handle: SimHandle, busy: Busy, power: Rc<Power>) -> Self {
        DeviceMqtt {
            inner,
            handle,
            busy,
            power,
        }
    }

    async fn device_turn(&self) {
        self.busy.pay(&self.handle).await;
        if self.power.lost() {
            std::future::pending::<()>().await;
        }
    }
}

impl twinrig_hal::MqttClient for DeviceMqtt {
    fn client_id(&self) -> &str {
        self.inner.client_id()
    }

    async fn subscribe(
        &self,
        filter: &str,
        qos: twinrig_hal::QoS,
    ) -> Result<(), twinrig_hal::MqttError> {
        self.device_turn().await;
        self.inner.subscribe(filter, qos).await
    }

    async fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: twinrig_hal::QoS,
    ) -> Result<(), twinrig_hal::MqttError> {
        self.device_turn().await;
        self.inner.publish(topic, payload, qos).await
    }

    async fn receive(&self) -> Result<twinrig_hal::MqttMessage, twinrig_hal::MqttError> {
        if self.power.lost() {
            std::future::pending::<()>().await;
        }
        self.inner.receive().await
    }
}

/// The device's delay: pays the device's [`Busy`] time first.
#[derive(Clone)]
pub struct DeviceDelay {
    handle: SimHandle,
    busy: Busy,
    power: Rc<Power>,
}

impl DeviceDelay {
    /// Delays on the device's CPU time and power.
    pub fn new(handle: SimHandle, busy: Busy, power: Rc<Power>) -> Self {
        DeviceDelay {
            handle,
            busy,
            power,
        }
    }

    async fn sleep(&mut self, ns: Nanos) {
        self.busy.pay(&self.handle).await;
        if self.power.lost() {
            std::future::pending::<()>().await;
        }
        self.handle.sleep(ns).await;
    }
}

impl embedded_hal_async::delay::DelayNs for DeviceDelay {
    async fn delay_ns(&mut self, ns: u32) {
        self.sleep(Nanos::from(ns)).await;
    }

    async fn delay_us(&mut self, us: u32) {
        self.sleep(Nanos::from(us) * MICROS).await;
    }

    async fn delay_ms(&mut self, ms: u32) {
        self.sleep(Nanos::from(ms) * MILLIS).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_flash_erases_to_ff_and_programs_only_clear_bits() {
        let mut f = RamFlash::new(2 * SECTOR);
        assert_eq!(f.capacity(), 2 * SECTOR);
        let mut b = [0u8; 4];
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF; 4]);
        f.write(0, &[0xF0, 0x0F, 0xAA, 0x55]).unwrap();
        f.write(0, &[0x3C, 0xFF, 0xFF, 0x00]).unwrap();
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0x30, 0x0F, 0xAA, 0x00]);
        assert!(f.write(1, &[0; 4]).is_err(), "unaligned write");
        assert!(f.erase(0, 100).is_err(), "partial sector");
        f.erase(0, SECTOR as u32).unwrap();
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF; 4]);
        assert!(
            f.read(2 * SECTOR as u32 - 2, &mut b).is_err(),
            "past the end"
        );
    }

    #[test]
    fn flash_timing_uses_block_erases_where_aligned_and_counts_pages() {
        let t = FlashTiming::default();
        // One aligned block, then two sectors of the next block.
        let b = BLOCK as u64;
        assert_eq!(t.erase_ns(b, 2 * b), 150 * MILLIS);
        assert_eq!(t.erase_ns(b, 2 * b + 8192), 150 * MILLIS + 2 * 45 * MILLIS);
        // Not aligned: sectors only.
        assert_eq!(t.erase_ns(4096, 4096 + b), 16 * 45 * MILLIS);
        assert_eq!(t.write_ns(0, 256), 400 * MICROS);
        assert_eq!(t.write_ns(128, 256), 2 * 400 * MICROS, "two pages touched");
        assert_eq!(t.write_ns(0, 0), 0);
        assert_eq!(t.read_ns(40_000_000), SECONDS);
        assert_eq!(FlashTiming::INSTANT.read_ns(1 << 20), 0);
    }

    #[test]
    fn timed_flash_owes_its_time_and_a_power_cut_tears_one_operation() {
        let busy = Busy::default();
        let power = Rc::new(Power::default());
        let base = RamFlash::new(4 * SECTOR);
        let mut f = base.timed(FlashTiming::default(), busy.clone(), power.clone());
        f.write(0, &[0u8; 256]).unwrap();
        assert_eq!(busy.owed(), 400 * MICROS);
        power.arm(2);
        f.erase(0, SECTOR as u32).unwrap();
        // The 2nd operation from arming: half of the page is programmed.
        assert!(f.write(SECTOR as u32, &[0u8; 8]).is_err());
        assert!(power.lost());
        assert_eq!(
            base.bytes()[SECTOR..SECTOR + 8],
            [0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        let mut b = [0u8; 4];
        assert!(f.read(0, &mut b).is_err(), "nothing works without power");
        // A probe shares the bytes but never loses power.
        base.probe().read(SECTOR as u32, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
        power.restore();
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF; 4], "the erase before the cut completed");
    }
}
