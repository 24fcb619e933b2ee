//! Parameters of the RVR twin beyond the drivetrain ([`super::DriveParams`]).
//!
//! Every value the reference sheets do not give is marked "assumed" with its
//! reasoning, and can be changed per twin. Sources: the project's RVR fact
//! sheet (sphero-rvr.md), the Python SDK 0.3.4's docstrings, and two answers
//! by Sphero staff on community.sphero.com: thread 2962 "Motor Fault and Stall
//! Conditions" (stall reported after 5 s and reset after 2 s; thermal warning
//! at 74 °C, motors disabled for cool-down at the critical 84 °C; a motor
//! fault is an H-bridge thermal shutdown, "exceedingly rare") and thread 1059
//! (in thermal protection the motors shut down and the robot ignores drive
//! commands until it has cooled down).

use rvr_protocol::{AddressStyle, PaletteEntry, Version};

use twinrig_sim::{MILLIS, Nanos, SECONDS};

/// Twin parameters beyond the drivetrain.
#[derive(Debug, Clone, PartialEq)]
pub struct RvrConfig {
    /// Battery capacity, mAh (4000: pre-launch press material).
    pub battery_mah: f32,
    /// Charge at power-on, percent (assumed 100).
    pub battery_start_pct: f32,
    /// Current drawn awake and idle, mA (assumed 150).
    pub idle_ma: f32,
    /// Extra current at full tread speed on both treads with no load, mA
    /// (assumed 1800: about 2 h of driving, as Sphero's battery FAQ says).
    pub drive_ma: f32,
    /// Ambient light reported, lux (assumed 300, an office).
    pub ambient_lux: f32,
    /// Shortest streaming period accepted, ms (33: the SDKs refuse less).
    pub min_stream_period_ms: u16,
    /// How the twin addresses its notifications. Default: like the Python
    /// SDK can receive them (SID = bare node, see
    /// [`AddressStyle::notification_header`]).
    pub notification_style: AddressStyle,
    /// Versions, names and ids the robot reports.
    pub identity: Identity,
    /// Battery voltage model.
    pub battery: BatteryParams,
    /// Motor current, temperature, stall and fault model.
    pub motors: MotorParams,
    /// Colour sensor and palette model.
    pub color: ColorParams,
    /// Full scale of the gyro, deg/s: a rate beyond it raises
    /// `gyro_max_notify` (2000: the range of the SDKs' gyroscope stream).
    pub gyro_range_dps: f32,
}

impl Default for RvrConfig {
    fn default() -> Self {
        RvrConfig {
            battery_mah: 4000.0,
            battery_start_pct: 100.0,
            idle_ma: 150.0,
            drive_ma: 1800.0,
            ambient_lux: 300.0,
            min_stream_period_ms: 33,
            notification_style: AddressStyle::TargetOnly,
            identity: Identity::default(),
            battery: BatteryParams::default(),
            motors: MotorParams::default(),
            color: ColorParams::default(),
            gyro_range_dps: 2000.0,
        }
    }
}

/// What the robot says about itself (system info and connection devices).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Nordic main application version (8.3.432: the firmware the control
    /// system manual describes, per the fact sheet).
    pub nordic_version: Version,
    /// ST main application version (8.6.448, same source).
    pub st_version: Version,
    /// Nordic bootloader version (assumed 4.0.0: not published).
    pub nordic_bootloader: Version,
    /// ST bootloader version (assumed 4.0.0: not published).
    pub st_bootloader: Version,
    /// Processor names (assumed "Nordic" and "ST": the SDK says only "as
    /// specified to the System Info module").
    pub nordic_name: String,
    pub st_name: String,
    /// Board revision (assumed 1).
    pub board_revision: u8,
    /// MAC address as the robot prints it (assumed format and value).
    pub mac_address: String,
    /// Stats id (assumed 0: "assigned by the company for activation tracking").
    pub stats_id: u16,
    /// SKU (assumed "RV01").
    pub sku: String,
    /// Bluetooth advertising name (assumed "RV-5256": the SDK's example for
    /// the BOLT is "BL-ABCD", RVRs advertise as "RV-" and four characters).
    pub bluetooth_name: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            nordic_version: Version {
                major: 8,
                minor: 3,
                revision: 432,
            },
            st_version: Version {
                major: 8,
                minor: 6,
                revision: 448,
            },
            nordic_bootloader: Version {
                major: 4,
                minor: 0,
                revision: 0,
            },
            st_bootloader: Version {
                major: 4,
                minor: 0,
                revision: 0,
            },
            nordic_name: "Nordic".into(),
            st_name: "ST".into(),
            board_revision: 1,
            mac_address: "C0:FF:EE:52:56:52".into(),
            stats_id: 0,
            sku: "RV01".into(),
            bluetooth_name: "RV-5256".into(),
        }
    }
}

/// Battery voltage: an open-circuit voltage per charge, minus the sag of the
/// current through the internal resistance. The RVR's pack voltage and
/// thresholds are not published: assumed a 2-cell Li-ion pack (8.4 V full).
#[derive(Debug, Clone, PartialEq)]
pub struct BatteryParams {
    /// (charge percent, open-circuit volts), ascending in charge (assumed,
    /// a typical 2-cell Li-ion discharge curve).
    pub ocv_curve: Vec<(f32, f32)>,
    /// Internal resistance, ohms (assumed 0.15).
    pub internal_ohm: f32,
    /// Below this the state is critical, volts (assumed 6.6).
    pub critical_v: f32,
    /// Below this the state is low, volts (assumed 7.0).
    pub low_v: f32,
    /// A rising voltage must pass a threshold by this much to leave its
    /// state, volts (assumed 0.1; the rule is the SDK docstring's).
    pub hysteresis_v: f32,
    /// How often the robot reads the battery (1 s: "updated once per second
    /// on most robots", SDK docstring of `get_battery_voltage_in_volts`).
    pub read_period: Nanos,
}

impl Default for BatteryParams {
    fn default() -> Self {
        BatteryParams {
            ocv_curve: vec![
                (0.0, 6.0),
                (5.0, 6.6),
                (10.0, 6.9),
                (20.0, 7.2),
                (40.0, 7.45),
                (60.0, 7.65),
                (80.0, 7.95),
                (100.0, 8.35),
            ],
            internal_ohm: 0.15,
            critical_v: 6.6,
            low_v: 7.0,
            hysteresis_v: 0.1,
            read_period: SECONDS,
        }
    }
}

/// Motor current, temperatures, stall and fault.
#[derive(Debug, Clone, PartialEq)]
pub struct MotorParams {
    /// Current per newton of tread force, A/N (assumed 0.3: about 2 A per
    /// motor when its tread slips at the traction limit).
    pub amps_per_newton: f32,
    /// Ambient temperature, °C (assumed 25).
    pub ambient_c: f32,
    /// Case temperature rise above ambient per A² at steady state (assumed 6).
    pub case_rise_c_per_a2: f32,
    /// Case thermal time constant (assumed 600 s).
    pub case_tau: Nanos,
    /// Winding temperature rise above the case per A² at steady state
    /// (assumed 10: a stalled motor reaches the warning in about 20 s).
    pub winding_rise_c_per_a2: f32,
    /// Winding thermal time constant (assumed 20 s).
    pub winding_tau: Nanos,
    /// Winding temperature of the thermal warning, °C (74, Sphero staff).
    pub warning_c: f32,
    /// Winding temperature of thermal protection, °C (84, Sphero staff):
    /// the motors stop and drive commands are refused until cool-down.
    pub critical_c: f32,
    /// Cool-down ends below this, °C (assumed 60).
    pub recovered_c: f32,
    /// A warning clears this far below `warning_c`, °C (assumed 2).
    pub warning_hysteresis_c: f32,
    /// A tread is stalling when commanded at least this fast, m/s (assumed 0.05)...
    pub stall_min_speed: f32,
    /// ...while its ground speed stays below this fraction of the command
    /// (assumed 0.25).
    pub stall_progress_ratio: f32,
    /// Stall protection triggers after this long stalling (5 s, Sphero staff).
    pub stall_after: Nanos,
    /// And clears after this long not stalling (2 s, Sphero staff).
    pub stall_clear_after: Nanos,
    /// A motor fault (H-bridge shutdown) happens this long after power-on;
    /// `None`: never (the default: Sphero staff call it exceedingly rare).
    /// It latches until power-off; the motors stop.
    pub fault_after: Option<Nanos>,
}

impl Default for MotorParams {
    fn default() -> Self {
        MotorParams {
            amps_per_newton: 0.3,
            ambient_c: 25.0,
            case_rise_c_per_a2: 6.0,
            case_tau: 600 * SECONDS,
            winding_rise_c_per_a2: 10.0,
            winding_tau: 20 * SECONDS,
            warning_c: 74.0,
            critical_c: 84.0,
            recovered_c: 60.0,
            warning_hysteresis_c: 2.0,
            stall_min_speed: 0.05,
            stall_progress_ratio: 0.25,
            stall_after: 5 * SECONDS,
            stall_clear_after: 2 * SECONDS,
            fault_after: None,
        }
    }
}

/// The colour sensor under the robot and the colour palette.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorParams {
    /// Colour of the floor the sensor sees with its LED on (assumed a light
    /// grey floor, 230, 230, 230).
    pub floor_rgb: [u8; 3],
    /// RGBC count of a full-scale channel (assumed 65535 for 255).
    pub rgbc_full_scale: u16,
    /// RGB distance at which a palette match's confidence reaches 0
    /// (assumed 120; confidence = 255 * (1 - distance / this)).
    pub match_distance: f32,
    /// The active palette at power-on, also stored as palette 0 (assumed:
    /// the Python SDK's `Colors` enum, without "off").
    pub default_palette: Vec<PaletteEntry>,
}

impl Default for ColorParams {
    fn default() -> Self {
        let entry = |index, [red, green, blue]: [u8; 3]| PaletteEntry {
            index,
            red,
            green,
            blue,
        };
        ColorParams {
            floor_rgb: [230, 230, 230],
            rgbc_full_scale: 65535,
            match_distance: 120.0,
            default_palette: vec![
                entry(0, [0xFF, 0x00, 0x00]),
                entry(1, [0x00, 0xFF, 0x00]),
                entry(2, [0x00, 0x00, 0xFF]),
                entry(3, [0xFF, 0xFF, 0xFF]),
                entry(4, [0xFF, 0x90, 0x00]),
                entry(5, [0xFF, 0x00, 0xFF]),
                entry(6, [0xFF, 0x20, 0x00]),
                entry(7, [0xFF, 0x66, 0xB2]),
            ],
        }
    }
}

/// The monitor's period: how often the twin checks for stalls, gyro
/// overruns, temperatures, faults and the stop controller (assumed 10 ms).
pub const MONITOR_PERIOD: Nanos = 10 * MILLIS;
