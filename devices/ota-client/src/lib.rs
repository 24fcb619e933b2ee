//! OTA client (being written).
#![no_std]
