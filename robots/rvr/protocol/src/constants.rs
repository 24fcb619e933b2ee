//! Every number of the RVR wire protocol, in one place.
//!
//! This module is data only: framing bytes, flag bits, addressing bytes,
//! device and command ids, error codes, parameter enums, limits, and the
//! sensor-streaming service table with its normalisation ranges. The rest of
//! the crate refers to these names and never to bare literals.
//!
//! Source: the project's RVR fact sheet (`shared/reference/sphero-rvr.md`,
//! sections 1-5), which restates the official Sphero SDKs. Values the fact
//! sheet does not pin down are marked **assumed**.

/// Framing: start/end bytes, escaping, checksum and size limits (fact sheet §1, §3).
pub mod framing {
    /// Start of packet.
    pub const SOP: u8 = 0x8D;
    /// End of packet.
    pub const EOP: u8 = 0xD8;
    /// Escape byte: the next byte is a special byte with [`ESCAPE_MASK`] cleared.
    pub const ESC: u8 = 0xAB;
    /// Bits cleared when escaping (`raw & !ESCAPE_MASK`) and set when un-escaping.
    pub const ESCAPE_MASK: u8 = 0x88;
    /// `SOP` as it follows `ESC` on the wire.
    pub const ESCAPED_SOP: u8 = SOP & !ESCAPE_MASK; // 0x05
    /// `EOP` as it follows `ESC` on the wire.
    pub const ESCAPED_EOP: u8 = EOP & !ESCAPE_MASK; // 0x50
    /// `ESC` as it follows `ESC` on the wire.
    pub const ESCAPED_ESC: u8 = ESC & !ESCAPE_MASK; // 0x23
    /// The (un-escaped) bytes FLAGS..=CHK of a valid frame sum to this, mod 256.
    pub const CHECKSUM_SUM: u8 = 0xFF;

    /// Smallest frame on the wire: SOP, FLAGS, DID, CID, SEQ, CHK, EOP.
    pub const MIN_FRAME_LEN: usize = 7;
    /// Smallest un-escaped body (FLAGS..=CHK).
    pub const MIN_BODY_LEN: usize = MIN_FRAME_LEN - 2;
    /// Longest header: FLAGS, TID, SID, DID, CID, SEQ, ERR.
    pub const MAX_HEADER_LEN: usize = 7;
    /// Largest payload (DATA) this crate accepts. **Assumed**: the protocol has
    /// no length field and the fact sheet gives no maximum; the largest
    /// documented bodies are a colour palette (48 bytes) and a full streaming
    /// slot (at most 73 bytes: token + 18 attributes x 4 bytes).
    pub const MAX_PAYLOAD_LEN: usize = 128;
    /// Largest un-escaped body (FLAGS..=CHK).
    pub const MAX_BODY_LEN: usize = MAX_HEADER_LEN + MAX_PAYLOAD_LEN + 1;
    /// Largest frame on the wire: SOP + every body byte escaped + EOP.
    pub const MAX_FRAME_LEN: usize = 2 + 2 * MAX_BODY_LEN;
}

/// FLAGS byte bits (fact sheet §2).
pub mod flag_bits {
    /// The packet is a response (an ERR byte follows SEQ).
    pub const IS_RESPONSE: u8 = 0x01;
    /// The sender wants a response.
    pub const REQUESTS_RESPONSE: u8 = 0x02;
    /// The sender wants a response only if there is an error.
    pub const REQUESTS_ERROR_RESPONSE_ONLY: u8 = 0x04;
    /// The packet counts as user activity (resets the inactivity timeout).
    pub const IS_ACTIVITY: u8 = 0x08;
    /// A target id (TID) byte follows FLAGS.
    pub const HAS_TARGET: u8 = 0x10;
    /// A source id (SID) byte follows FLAGS (after TID, if present).
    pub const HAS_SOURCE: u8 = 0x20;
    /// Unused by both SDKs; carried through unchanged.
    pub const UNUSED_BIT6: u8 = 0x40;
    /// Another flags byte follows. Supported by neither SDK; frames with it are rejected.
    pub const HAS_MORE_FLAGS: u8 = 0x80;
    /// Bits that describe the packet's shape (derived from the header's fields).
    pub const STRUCTURAL: u8 = IS_RESPONSE | HAS_TARGET | HAS_SOURCE | HAS_MORE_FLAGS;
    /// Bits a sender chooses freely.
    pub const OPTIONAL: u8 =
        REQUESTS_RESPONSE | REQUESTS_ERROR_RESPONSE_ONLY | IS_ACTIVITY | UNUSED_BIT6;
}

/// Target / source id bytes: `port << 4 | node` (fact sheet §2).
pub mod address {
    /// Node number of the Nordic processor (power, LEDs, colour / ambient light).
    pub const NORDIC_NODE: u8 = 0x01;
    /// Node number of the ST processor (drive, IMU, locator, encoders).
    pub const ST_NODE: u8 = 0x02;
    /// Mask of the node nibble.
    pub const NODE_MASK: u8 = 0x0F;
    /// Shift of the port nibble.
    pub const PORT_SHIFT: u8 = 4;
    /// Port the Node.js SDK puts in its target ids (`0x11` Nordic, `0x12` ST).
    pub const TARGET_AND_SOURCE_PORT: u8 = 0x01;
    /// Source id the Node.js SDK sends for the host ("service source").
    pub const HOST_SOURCE: u8 = 0x01;
}

/// Device ids, DID (fact sheet §4).
pub mod device {
    pub const API_AND_SHELL: u8 = 0x10;
    pub const SYSTEM_INFO: u8 = 0x11;
    pub const POWER: u8 = 0x13;
    pub const DRIVE: u8 = 0x16;
    pub const SENSOR: u8 = 0x18;
    pub const CONNECTION: u8 = 0x19;
    pub const IO: u8 = 0x1A;

    /// Default processor node per device when a packet carries no target id
    /// (fact sheet §4 table; `api_and_shell` is "either", listed as `None`).
    /// A command that only one processor serves goes there whatever its
    /// device's default (the command table in `crate::command`).
    pub const DEFAULT_NODE: [(u8, Option<u8>); 7] = [
        (API_AND_SHELL, None),
        (SYSTEM_INFO, Some(super::address::NORDIC_NODE)),
        (POWER, Some(super::address::NORDIC_NODE)),
        (DRIVE, Some(super::address::ST_NODE)),
        (SENSOR, Some(super::address::ST_NODE)),
        (CONNECTION, Some(super::address::NORDIC_NODE)),
        (IO, Some(super::address::NORDIC_NODE)),
    ];
}

/// API and shell (DID 0x10) command ids; either processor (fact sheet §4.1).
pub mod api_and_shell {
    pub const ECHO: u8 = 0x00;
    /// Most bytes `echo` carries (the Python SDK's parameter size).
    pub const ECHO_MAX_LEN: usize = 16;
}

/// System info (DID 0x11) command ids (fact sheet §4.1; the Python SDK 0.3.4
/// command table).
pub mod system_info {
    pub const GET_MAIN_APPLICATION_VERSION: u8 = 0x00;
    pub const GET_BOOTLOADER_VERSION: u8 = 0x01;
    pub const GET_BOARD_REVISION: u8 = 0x03;
    pub const GET_MAC_ADDRESS: u8 = 0x06;
    pub const GET_STATS_ID: u8 = 0x13;
    pub const GET_PROCESSOR_NAME: u8 = 0x1F;
    pub const GET_SKU: u8 = 0x38;
    pub const GET_CORE_UP_TIME_IN_MILLISECONDS: u8 = 0x39;
}

/// Connection (DID 0x19) command ids; Nordic (fact sheet §4.1).
pub mod connection {
    pub const GET_BLUETOOTH_ADVERTISING_NAME: u8 = 0x05;
}

/// User IO (DID 0x1A) command ids and limits; Nordic (fact sheet §4.5).
pub mod io {
    pub const SET_ALL_LEDS: u8 = 0x1A;
    pub const GET_ACTIVE_COLOR_PALETTE: u8 = 0x44;
    pub const SET_ACTIVE_COLOR_PALETTE: u8 = 0x45;
    pub const GET_COLOR_IDENTIFICATION_REPORT: u8 = 0x46;
    pub const LOAD_COLOR_PALETTE: u8 = 0x47;
    pub const SAVE_COLOR_PALETTE: u8 = 0x48;
    pub const RELEASE_LED_REQUESTS: u8 = 0x4E;

    /// Most brightness values `set_all_leds` carries (one per mask bit).
    pub const MAX_LED_VALUES: usize = 32;
    /// LED channels the RVR has: bits 0-29 are ten RGB groups, bit 30 the
    /// undercarriage white LED (Python SDK `SpheroRvrLedBitmasks`).
    pub const LED_CHANNELS: usize = 31;
    /// Mask bits naming an RVR LED channel.
    pub const LED_BITS_DEFINED: u32 = (1 << LED_CHANNELS) - 1;
    /// Bytes of one palette entry: index, red, green, blue.
    pub const PALETTE_ENTRY_LEN: usize = 4;
    /// Most palette entries (the Python SDK's 48-byte parameter / 4).
    pub const MAX_PALETTE_ENTRIES: usize = 12;
    /// Bytes of one identification report entry: index, confidence.
    pub const REPORT_ENTRY_LEN: usize = 2;
    /// Colour classification id meaning "not identified" (Python SDK docstring
    /// of `on_color_detection_notify`); never a palette index.
    pub const UNIDENTIFIED_COLOR: u8 = 0xFF;
}

/// Text outputs (MAC address, names, SKU): UTF-8 bytes to the end of the
/// payload, as the Python SDK unpacks `std::string`.
pub mod text {
    /// Longest text this crate carries. **Assumed**: the SDKs give no limit;
    /// the longest documented value is a MAC address (17 characters).
    pub const MAX_TEXT_LEN: usize = 64;
    /// A host-sent or robot-sent string may end with this (C strings).
    pub const TERMINATOR: u8 = 0;
}

/// Power (DID 0x13) command ids; Nordic (fact sheet §4.2).
pub mod power {
    pub const SLEEP: u8 = 0x01;
    pub const WAKE: u8 = 0x0D;
    pub const GET_BATTERY_PERCENTAGE: u8 = 0x10;
    pub const GET_BATTERY_VOLTAGE_STATE: u8 = 0x17;
    pub const WILL_SLEEP_NOTIFY: u8 = 0x19;
    pub const DID_SLEEP_NOTIFY: u8 = 0x1A;
    pub const ENABLE_BATTERY_VOLTAGE_STATE_CHANGE_NOTIFY: u8 = 0x1B;
    pub const BATTERY_VOLTAGE_STATE_CHANGE_NOTIFY: u8 = 0x1C;
    pub const GET_BATTERY_VOLTAGE_IN_VOLTS: u8 = 0x25;
    pub const GET_BATTERY_VOLTAGE_STATE_THRESHOLDS: u8 = 0x26;
    pub const GET_CURRENT_SENSE_AMPLIFIER_CURRENT: u8 = 0x27;

    /// Battery voltage states (response of `GET_BATTERY_VOLTAGE_STATE`).
    pub const VOLTAGE_STATE_UNKNOWN: u8 = 0;
    pub const VOLTAGE_STATE_OK: u8 = 1;
    pub const VOLTAGE_STATE_LOW: u8 = 2;
    pub const VOLTAGE_STATE_CRITICAL: u8 = 3;

    /// Reading types of `GET_BATTERY_VOLTAGE_IN_VOLTS`.
    pub const READING_CALIBRATED_FILTERED: u8 = 0;
    pub const READING_CALIBRATED_UNFILTERED: u8 = 1;
    pub const READING_UNCALIBRATED_UNFILTERED: u8 = 2;

    /// Current sense amplifier ids (Python SDK `AmplifierIdsEnum`).
    pub const AMPLIFIER_LEFT_MOTOR: u8 = 0;
    pub const AMPLIFIER_RIGHT_MOTOR: u8 = 1;
}

/// Drive (DID 0x16) command ids and parameter values; ST (fact sheet §4.3).
pub mod drive {
    pub const RAW_MOTORS: u8 = 0x01;
    pub const RESET_YAW: u8 = 0x06;
    pub const DRIVE_WITH_HEADING: u8 = 0x07;
    pub const SET_DEFAULT_CONTROL_SYSTEM_FOR_TYPE: u8 = 0x0E;
    pub const SET_CUSTOM_CONTROL_SYSTEM_TIMEOUT: u8 = 0x22;
    pub const ENABLE_MOTOR_STALL_NOTIFY: u8 = 0x25;
    pub const MOTOR_STALL_NOTIFY: u8 = 0x26;
    pub const ENABLE_MOTOR_FAULT_NOTIFY: u8 = 0x27;
    pub const MOTOR_FAULT_NOTIFY: u8 = 0x28;
    pub const GET_MOTOR_FAULT_STATE: u8 = 0x29;
    pub const DRIVE_TANK_SI_UNITS: u8 = 0x32;
    pub const DRIVE_TANK_NORMALIZED: u8 = 0x33;
    pub const DRIVE_RC_SI_UNITS: u8 = 0x34;
    pub const DRIVE_RC_NORMALIZED: u8 = 0x35;
    pub const DRIVE_WITH_YAW_SI: u8 = 0x36;
    pub const DRIVE_WITH_YAW_NORMALIZED: u8 = 0x37;
    pub const DRIVE_TO_POSITION_SI: u8 = 0x38;
    pub const DRIVE_TO_POSITION_NORMALIZED: u8 = 0x39;
    pub const XY_POSITION_DRIVE_RESULT_NOTIFY: u8 = 0x3A;
    pub const SET_DRIVE_TARGET_SLEW_PARAMETERS: u8 = 0x3C;
    pub const GET_DRIVE_TARGET_SLEW_PARAMETERS: u8 = 0x3D;
    pub const DRIVE_STOP_CUSTOM_DECEL: u8 = 0x3E;
    pub const ROBOT_HAS_STOPPED_NOTIFY: u8 = 0x3F;
    pub const RESTORE_DEFAULT_DRIVE_TARGET_SLEW_PARAMETERS: u8 = 0x40;
    pub const GET_STOP_CONTROLLER_STATE: u8 = 0x41;
    pub const DRIVE_STOP: u8 = 0x42;
    pub const RESTORE_DEFAULT_CONTROL_SYSTEM_TIMEOUT: u8 = 0x43;
    pub const GET_ACTIVE_CONTROL_SYSTEM_ID: u8 = 0x44;
    pub const RESTORE_INITIAL_DEFAULT_CONTROL_SYSTEMS: u8 = 0x45;
    pub const GET_DEFAULT_CONTROL_SYSTEM_FOR_TYPE: u8 = 0x46;

    /// Raw-motor modes.
    pub const MOTOR_MODE_OFF: u8 = 0;
    pub const MOTOR_MODE_FORWARD: u8 = 1;
    pub const MOTOR_MODE_REVERSE: u8 = 2;

    /// `drive_with_heading` flag bits.
    pub const HEADING_FLAG_REVERSE: u8 = 0x01;
    pub const HEADING_FLAG_BOOST: u8 = 0x02;
    pub const HEADING_FLAG_FAST_TURN: u8 = 0x04;
    pub const HEADING_FLAG_LEFT_DIRECTION: u8 = 0x08;
    pub const HEADING_FLAG_RIGHT_DIRECTION: u8 = 0x10;
    pub const HEADING_FLAG_ENABLE_DRIFT: u8 = 0x20;
    /// All defined `drive_with_heading` flag bits.
    pub const HEADING_FLAGS_DEFINED: u8 = 0x3F;
    /// Largest documented heading, degrees (0..=359; not enforced by this crate).
    pub const MAX_HEADING_DEG: u16 = 359;

    /// `drive_rc_*` flag: slew the linear velocity.
    pub const RC_FLAG_SLEW_LINEAR_VELOCITY: u8 = 0x01;
    /// All defined `drive_rc_*` flag bits.
    pub const RC_FLAGS_DEFINED: u8 = 0x01;

    /// XY-drive flags: bits 0-1 are the direction field.
    pub const XY_DIRECTION_MASK: u8 = 0x03;
    pub const XY_DIRECTION_FORWARD: u8 = 0;
    pub const XY_DIRECTION_FORCE_REVERSE: u8 = 1;
    pub const XY_DIRECTION_AUTO_REVERSE: u8 = 2;
    /// Direction value 3 is reserved; the firmware answers it with an error (CSM).
    pub const XY_DIRECTION_RESERVED: u8 = 3;
    /// XY-drive flag: the target is relative to the current position.
    pub const XY_FLAG_RELATIVE: u8 = 0x04;
    /// All defined XY-drive flag bits.
    pub const XY_FLAGS_DEFINED: u8 = 0x07;

    /// Motor indexes (Python SDK `MotorIndexesEnum`), also used by the
    /// sensor device's `get_motor_temperature`.
    pub const MOTOR_INDEX_LEFT: u8 = 0;
    pub const MOTOR_INDEX_RIGHT: u8 = 1;

    /// Default command timeout of the drive controllers, milliseconds.
    pub const DEFAULT_CONTROL_TIMEOUT_MS: u16 = 2000;
}

/// Sensor (DID 0x18) command ids and parameter values (fact sheet §4.4).
pub mod sensor {
    pub const ENABLE_GYRO_MAX_NOTIFY: u8 = 0x0F;
    pub const GYRO_MAX_NOTIFY: u8 = 0x10;
    pub const RESET_LOCATOR_X_AND_Y: u8 = 0x13;
    pub const SET_LOCATOR_FLAGS: u8 = 0x17;
    pub const GET_BOT_TO_BOT_INFRARED_READINGS: u8 = 0x22;
    pub const GET_RGBC_SENSOR_VALUES: u8 = 0x23;
    pub const MAGNETOMETER_CALIBRATE_TO_NORTH: u8 = 0x25;
    pub const START_ROBOT_TO_ROBOT_INFRARED_BROADCASTING: u8 = 0x27;
    pub const START_ROBOT_TO_ROBOT_INFRARED_FOLLOWING: u8 = 0x28;
    pub const STOP_ROBOT_TO_ROBOT_INFRARED_BROADCASTING: u8 = 0x29;
    pub const ROBOT_TO_ROBOT_INFRARED_MESSAGE_RECEIVED_NOTIFY: u8 = 0x2C;
    pub const GET_AMBIENT_LIGHT_SENSOR_VALUE: u8 = 0x30;
    pub const STOP_ROBOT_TO_ROBOT_INFRARED_FOLLOWING: u8 = 0x32;
    pub const START_ROBOT_TO_ROBOT_INFRARED_EVADING: u8 = 0x33;
    pub const STOP_ROBOT_TO_ROBOT_INFRARED_EVADING: u8 = 0x34;
    pub const ENABLE_COLOR_DETECTION_NOTIFY: u8 = 0x35;
    pub const COLOR_DETECTION_NOTIFY: u8 = 0x36;
    pub const GET_CURRENT_DETECTED_COLOR_READING: u8 = 0x37;
    pub const ENABLE_COLOR_DETECTION: u8 = 0x38;
    pub const CONFIGURE_STREAMING_SERVICE: u8 = 0x39;
    pub const START_STREAMING_SERVICE: u8 = 0x3A;
    pub const STOP_STREAMING_SERVICE: u8 = 0x3B;
    pub const CLEAR_STREAMING_SERVICE: u8 = 0x3C;
    pub const STREAMING_SERVICE_DATA_NOTIFY: u8 = 0x3D;
    pub const ENABLE_ROBOT_INFRARED_MESSAGE_NOTIFY: u8 = 0x3E;
    pub const SEND_INFRARED_MESSAGE: u8 = 0x3F;
    pub const GET_MOTOR_TEMPERATURE: u8 = 0x42;
    pub const GET_TEMPERATURE: u8 = 0x4A;
    pub const GET_MOTOR_THERMAL_PROTECTION_STATUS: u8 = 0x4B;
    pub const ENABLE_MOTOR_THERMAL_PROTECTION_STATUS_NOTIFY: u8 = 0x4C;
    pub const MOTOR_THERMAL_PROTECTION_STATUS_NOTIFY: u8 = 0x4D;
    pub const MAGNETOMETER_CALIBRATION_COMPLETE_NOTIFY: u8 = 0x51;
    pub const GET_MAGNETOMETER_READING: u8 = 0x52;
    pub const GET_ENCODER_COUNTS: u8 = 0x53;
    pub const DISABLE_NOTIFICATIONS_AND_ACTIVE_COMMANDS: u8 = 0x54;

    /// `gyro_max_notify` flag bits: the axis and direction beyond the gyro's range.
    pub const GYRO_MAX_PLUS_X: u8 = 0x01;
    pub const GYRO_MAX_MINUS_X: u8 = 0x02;
    pub const GYRO_MAX_PLUS_Y: u8 = 0x04;
    pub const GYRO_MAX_MINUS_Y: u8 = 0x08;
    pub const GYRO_MAX_PLUS_Z: u8 = 0x10;
    pub const GYRO_MAX_MINUS_Z: u8 = 0x20;
    /// All defined gyro-max flag bits.
    pub const GYRO_MAX_FLAGS_DEFINED: u8 = 0x3F;

    /// `set_locator_flags` bit 0: keep the X-Y axes of start-up instead of
    /// re-orienting them at every yaw reset (Python SDK docstring).
    pub const LOCATOR_FLAG_AUTO_CALIBRATE: u8 = 0x01;
    /// All defined locator flag bits.
    pub const LOCATOR_FLAGS_DEFINED: u8 = 0x01;

    /// Infrared message codes are 0..=7 and emitter strengths 0..=64 (Python
    /// SDK docstring of `send_infrared_message`); checked by the robot, not
    /// by this crate.
    pub const MAX_INFRARED_CODE: u8 = 7;
    pub const MAX_INFRARED_STRENGTH: u8 = 64;

    /// Motor thermal protection status values.
    pub const THERMAL_STATUS_OK: u8 = 0;
    pub const THERMAL_STATUS_WARNING: u8 = 1;
    pub const THERMAL_STATUS_CRITICAL: u8 = 2;
}

/// ERR byte values of a response (fact sheet §2).
pub mod error_code {
    pub const SUCCESS: u8 = 0x00;
    pub const BAD_DEVICE_ID: u8 = 0x01;
    pub const BAD_COMMAND_ID: u8 = 0x02;
    pub const NOT_YET_IMPLEMENTED: u8 = 0x03;
    pub const COMMAND_RESTRICTED: u8 = 0x04;
    pub const BAD_DATA_LENGTH: u8 = 0x05;
    pub const COMMAND_FAILED: u8 = 0x06;
    pub const BAD_PARAMETER_VALUE: u8 = 0x07;
    pub const BUSY: u8 = 0x08;
    pub const BAD_TARGET_ID: u8 = 0x09;
    pub const TARGET_UNAVAILABLE: u8 = 0x0A;
}

/// Bool parameters are one byte (fact sheet §1).
pub mod boolean {
    pub const FALSE: u8 = 0;
    pub const TRUE: u8 = 1;
}

/// Sensor streaming: service ids, sizes, limits and the normalisation table (fact sheet §5).
pub mod streaming {
    use super::address::{NORDIC_NODE, ST_NODE};

    pub const QUATERNION: u16 = 0x0000;
    pub const IMU: u16 = 0x0001;
    pub const ACCELEROMETER: u16 = 0x0002;
    pub const COLOR_DETECTION: u16 = 0x0003;
    pub const GYROSCOPE: u16 = 0x0004;
    /// Only in the Node.js SDK.
    pub const CORE_TIME_LOWER: u16 = 0x0005;
    pub const LOCATOR: u16 = 0x0006;
    pub const VELOCITY: u16 = 0x0007;
    pub const SPEED: u16 = 0x0008;
    pub const CORE_TIME: u16 = 0x0009;
    pub const AMBIENT_LIGHT: u16 = 0x000A;
    /// Only in the Python SDK (newer firmware).
    pub const ENCODERS: u16 = 0x000B;

    /// Data-size codes of a configure entry.
    pub const SIZE_8_BIT: u8 = 0;
    pub const SIZE_16_BIT: u8 = 1;
    pub const SIZE_32_BIT: u8 = 2;

    /// Bytes of one configure entry: service id u16 + size u8.
    pub const CONFIG_ENTRY_LEN: usize = 3;
    /// At most 15 configuration bytes after the token.
    pub const MAX_CONFIG_BYTES: usize = 15;
    /// Services per slot (15 / 3).
    pub const MAX_SERVICES_PER_SLOT: usize = MAX_CONFIG_BYTES / CONFIG_ENTRY_LEN;
    /// Tokens the Python SDK uses (slots 1-4 per processor).
    pub const SDK_TOKENS: core::ops::RangeInclusive<u8> = 1..=4;
    /// Largest token that fits the low nibble of the data-notify token byte.
    /// **Assumed** upper bound for configure (the firmware's limit is not documented).
    pub const MAX_TOKEN: u8 = 0x0F;
    /// Data notify byte 0: low nibble = token.
    pub const TOKEN_MASK: u8 = 0x0F;
    /// Data notify byte 0: high nibble = status.
    pub const STATUS_SHIFT: u8 = 4;
    pub const STATUS_OK: u8 = 0;
    pub const STATUS_INVALID_DATA: u8 = 1;
    /// The Python SDK refuses shorter streaming periods, milliseconds.
    pub const MIN_PERIOD_MS: u16 = 33;

    /// How an attribute's raw unsigned integer maps to a value.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Range {
        /// `value = min + raw / (2^bits - 1) * (max - min)`.
        Scaled { min: f64, max: f64 },
        /// The raw integer is the value (times, encoder counts).
        Raw,
    }

    /// One attribute of a streaming service.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct AttributeSpec {
        pub name: &'static str,
        pub range: Range,
        /// Unit of the decoded value (inferred unless the fact sheet sources it).
        pub unit: &'static str,
    }

    /// One streaming service.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct ServiceSpec {
        pub id: u16,
        pub name: &'static str,
        /// Processor nodes that serve it.
        pub nodes: &'static [u8],
        /// Attributes, in wire order.
        pub attributes: &'static [AttributeSpec],
    }

    const fn scaled(name: &'static str, min: f64, max: f64, unit: &'static str) -> AttributeSpec {
        AttributeSpec {
            name,
            range: Range::Scaled { min, max },
            unit,
        }
    }

    const fn raw(name: &'static str, unit: &'static str) -> AttributeSpec {
        AttributeSpec {
            name,
            range: Range::Raw,
            unit,
        }
    }

    /// Largest attribute count of any service.
    pub const MAX_ATTRIBUTES: usize = 5;

    /// The service table, indexed by service id (ids are 0..=11).
    pub const SERVICES: [ServiceSpec; 12] = [
        ServiceSpec {
            id: QUATERNION,
            name: "Quaternion",
            nodes: &[ST_NODE],
            attributes: &[
                scaled("W", -1.0, 1.0, ""),
                scaled("X", -1.0, 1.0, ""),
                scaled("Y", -1.0, 1.0, ""),
                scaled("Z", -1.0, 1.0, ""),
            ],
        },
        ServiceSpec {
            id: IMU,
            name: "IMU",
            nodes: &[ST_NODE],
            attributes: &[
                scaled("Pitch", -180.0, 180.0, "deg"),
                scaled("Roll", -90.0, 90.0, "deg"),
                scaled("Yaw", -180.0, 180.0, "deg"),
            ],
        },
        ServiceSpec {
            id: ACCELEROMETER,
            name: "Accelerometer",
            nodes: &[ST_NODE],
            attributes: &[
                scaled("X", -16.0, 16.0, "g"),
                scaled("Y", -16.0, 16.0, "g"),
                scaled("Z", -16.0, 16.0, "g"),
            ],
        },
        ServiceSpec {
            id: COLOR_DETECTION,
            name: "ColorDetection",
            nodes: &[NORDIC_NODE],
            attributes: &[
                scaled("R", 0.0, 255.0, ""),
                scaled("G", 0.0, 255.0, ""),
                scaled("B", 0.0, 255.0, ""),
                scaled("Index", 0.0, 255.0, ""),
                scaled("Confidence", 0.0, 1.0, ""),
            ],
        },
        ServiceSpec {
            id: GYROSCOPE,
            name: "Gyroscope",
            nodes: &[ST_NODE],
            attributes: &[
                scaled("X", -2000.0, 2000.0, "deg/s"),
                scaled("Y", -2000.0, 2000.0, "deg/s"),
                scaled("Z", -2000.0, 2000.0, "deg/s"),
            ],
        },
        ServiceSpec {
            id: CORE_TIME_LOWER,
            name: "CoreTimeLower",
            nodes: &[NORDIC_NODE],
            attributes: &[raw("TimeLower", "ms")],
        },
        ServiceSpec {
            id: LOCATOR,
            name: "Locator",
            nodes: &[ST_NODE],
            attributes: &[
                scaled("X", -16000.0, 16000.0, "m"),
                scaled("Y", -16000.0, 16000.0, "m"),
            ],
        },
        ServiceSpec {
            id: VELOCITY,
            name: "Velocity",
            nodes: &[ST_NODE],
            attributes: &[scaled("X", -5.0, 5.0, "m/s"), scaled("Y", -5.0, 5.0, "m/s")],
        },
        ServiceSpec {
            id: SPEED,
            name: "Speed",
            nodes: &[ST_NODE],
            attributes: &[scaled("Speed", 0.0, 5.0, "m/s")],
        },
        ServiceSpec {
            id: CORE_TIME,
            name: "CoreTime",
            nodes: &[NORDIC_NODE, ST_NODE],
            attributes: &[raw("TimeUpper", "ms"), raw("TimeLower", "ms")],
        },
        ServiceSpec {
            id: AMBIENT_LIGHT,
            name: "AmbientLight",
            nodes: &[NORDIC_NODE],
            attributes: &[scaled("Light", 0.0, 120000.0, "lux")],
        },
        ServiceSpec {
            id: ENCODERS,
            name: "Encoders",
            nodes: &[ST_NODE],
            attributes: &[raw("LeftTicks", "ticks"), raw("RightTicks", "ticks")],
        },
    ];
}
