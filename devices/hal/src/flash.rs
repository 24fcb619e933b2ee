//! The NOR flash geometry every device flash has, simulated or real.
//!
//! The simulator's RAM flash and a real machine's file-backed flash share
//! these constants, so partition tables and the OTA client's alignment
//! checks hold the same on both (ESP32-class SPI NOR).

/// Write granularity in bytes (`NorFlash::WRITE_SIZE`): the simulated and
/// real flash share it (ESP32: 4 bytes).
pub const WRITE_SIZE: usize = 4;

/// Erase sector in bytes (`NorFlash::ERASE_SIZE`): the simulated and real
/// flash share it (ESP32: 4 KiB).
pub const ERASE_SIZE: usize = 4096;
