//! [`HandDriver`] over rustypot's `Scs0009Controller` (the real driver, unmodified).
//!
//! Every write is a unicast WRITE acknowledged by the servo, as in Pollen's demo:
//! `set_speed` writes `goal_speed` (rad/s) per id, `write_goal_positions` writes
//! `goal_position` (rad) per id, `enable_torque` writes `torque_enable` 1/0 to each
//! of the 8 servos (acknowledged, so a servo that missed it is an error), and
//! `read_present_positions` reads `present_position` of each servo.

use rustypot::servo::feetech::scs0009::Scs0009Controller;

use crate::driver::{ALL_SERVOS, DriverError, HandDriver, SERVO_COUNT};

/// The real servo bus through rustypot.
///
/// Build the controller as the hardware does:
/// `Scs0009Controller::new().with_protocol_v1().with_serial_port(port)` with a
/// `Box<dyn serialport::SerialPort>` (1,000,000 baud); the harness passes the
/// servo-bus twin's port.
pub struct RustypotDriver {
    controller: Scs0009Controller,
}

fn bus(e: Box<dyn std::error::Error>) -> DriverError {
    DriverError(e.to_string())
}

impl RustypotDriver {
    /// Wraps a controller that already has its protocol and serial port set
    /// (rustypot panics on first use otherwise).
    pub fn new(controller: Scs0009Controller) -> Self {
        RustypotDriver { controller }
    }

    /// The controller back.
    pub fn into_inner(self) -> Scs0009Controller {
        self.controller
    }
}

impl HandDriver for RustypotDriver {
    fn set_speed(&mut self, ids: &[u8], rad_per_s: f64) -> Result<(), DriverError> {
        for &id in ids {
            self.controller
                .write_goal_speed(id, rad_per_s)
                .map_err(bus)?;
        }
        Ok(())
    }

    fn write_goal_positions(&mut self, ids: &[u8], radians: &[f64]) -> Result<(), DriverError> {
        if ids.len() != radians.len() {
            return Err(DriverError(format!(
                "{} ids but {} positions",
                ids.len(),
                radians.len()
            )));
        }
        for (&id, &rad) in ids.iter().zip(radians) {
            self.controller.write_goal_position(id, rad).map_err(bus)?;
        }
        Ok(())
    }

    fn enable_torque(&mut self, on: bool) -> Result<(), DriverError> {
        for id in ALL_SERVOS {
            self.controller
                .write_torque_enable(id, u8::from(on))
                .map_err(bus)?;
        }
        Ok(())
    }

    fn read_present_positions(&mut self) -> Result<[f64; SERVO_COUNT], DriverError> {
        let mut out = [0.0; SERVO_COUNT];
        for (slot, id) in out.iter_mut().zip(ALL_SERVOS) {
            let values = self.controller.read_present_position(id).map_err(bus)?;
            *slot = *values
                .first()
                .ok_or_else(|| DriverError(format!("servo {id}: empty present_position reply")))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};

    use super::*;

    /// Instruction packets received: (id, instruction, params).
    type Log = Arc<Mutex<Vec<(u8, u8, Vec<u8>)>>>;

    /// An in-memory SCS bus: 8 servos with 256-byte register files, replying with
    /// a status packet to every unicast instruction (no echo).
    struct MemPort {
        log: Log,
        regs: Arc<Mutex<[[u8; 256]; 9]>>,
        rx: Vec<u8>,
    }

    impl io::Write for MemPort {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            assert_eq!(&buf[..2], &[0xff, 0xff]);
            let (id, len, instr) = (buf[2], buf[3] as usize, buf[4]);
            let params = buf[5..3 + len].to_vec();
            let sum: u32 = buf[2..3 + len].iter().map(|b| u32::from(*b)).sum();
            assert_eq!(buf[3 + len], !(sum as u8), "checksum");
            self.log.lock().unwrap().push((id, instr, params.clone()));
            let mut regs = self.regs.lock().unwrap();
            let data = match instr {
                0x03 => {
                    let addr = params[0] as usize;
                    regs[id as usize][addr..addr + params.len() - 1].copy_from_slice(&params[1..]);
                    Vec::new()
                }
                0x02 => {
                    let (addr, n) = (params[0] as usize, params[1] as usize);
                    regs[id as usize][addr..addr + n].to_vec()
                }
                _ => Vec::new(),
            };
            let mut reply = vec![0xff, 0xff, id, data.len() as u8 + 2, 0];
            reply.extend(&data);
            let sum: u32 = reply[2..].iter().map(|b| u32::from(*b)).sum();
            reply.push(!(sum as u8));
            self.rx.extend(reply);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl io::Read for MemPort {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.rx.is_empty() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let n = buf.len().min(self.rx.len());
            buf[..n].copy_from_slice(&self.rx[..n]);
            self.rx.drain(..n);
            Ok(n)
        }
    }

    impl SerialPort for MemPort {
        fn name(&self) -> Option<String> {
            None
        }
        fn baud_rate(&self) -> serialport::Result<u32> {
            Ok(1_000_000)
        }
        fn data_bits(&self) -> serialport::Result<DataBits> {
            Ok(DataBits::Eight)
        }
        fn flow_control(&self) -> serialport::Result<FlowControl> {
            Ok(FlowControl::None)
        }
        fn parity(&self) -> serialport::Result<Parity> {
            Ok(Parity::None)
        }
        fn stop_bits(&self) -> serialport::Result<StopBits> {
            Ok(StopBits::One)
        }
        fn timeout(&self) -> Duration {
            Duration::from_millis(10)
        }
        fn set_baud_rate(&mut self, _: u32) -> serialport::Result<()> {
            Ok(())
        }
        fn set_data_bits(&mut self, _: DataBits) -> serialport::Result<()> {
            Ok(())
        }
        fn set_flow_control(&mut self, _: FlowControl) -> serialport::Result<()> {
            Ok(())
        }
        fn set_parity(&mut self, _: Parity) -> serialport::Result<()> {
            Ok(())
        }
        fn set_stop_bits(&mut self, _: StopBits) -> serialport::Result<()> {
            Ok(())
        }
        fn set_timeout(&mut self, _: Duration) -> serialport::Result<()> {
            Ok(())
        }
        fn write_request_to_send(&mut self, _: bool) -> serialport::Result<()> {
            Ok(())
        }
        fn write_data_terminal_ready(&mut self, _: bool) -> serialport::Result<()> {
            Ok(())
        }
        fn read_clear_to_send(&mut self) -> serialport::Result<bool> {
            Ok(true)
        }
        fn read_data_set_ready(&mut self) -> serialport::Result<bool> {
            Ok(true)
        }
        fn read_ring_indicator(&mut self) -> serialport::Result<bool> {
            Ok(false)
        }
        fn read_carrier_detect(&mut self) -> serialport::Result<bool> {
            Ok(true)
        }
        fn bytes_to_read(&self) -> serialport::Result<u32> {
            Ok(self.rx.len() as u32)
        }
        fn bytes_to_write(&self) -> serialport::Result<u32> {
            Ok(0)
        }
        fn clear(&self, _: ClearBuffer) -> serialport::Result<()> {
            Ok(())
        }
        fn try_clone(&self) -> serialport::Result<Box<dyn SerialPort>> {
            Err(serialport::Error::new(
                serialport::ErrorKind::Unknown,
                "no clone",
            ))
        }
        fn set_break(&self) -> serialport::Result<()> {
            Ok(())
        }
        fn clear_break(&self) -> serialport::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn adapter_drives_rustypot_over_an_in_memory_bus() {
        let log: Log = Arc::default();
        let regs = Arc::new(Mutex::new([[0u8; 256]; 9]));
        for r in regs.lock().unwrap().iter_mut() {
            // present_position (addr 56) = raw 511 = 0 rad, big-endian word.
            r[56] = 0x01;
            r[57] = 0xff;
        }
        let port = MemPort {
            log: log.clone(),
            regs: regs.clone(),
            rx: Vec::new(),
        };
        let controller = Scs0009Controller::new()
            .with_protocol_v1()
            .with_serial_port(Box::new(port));
        let mut driver = RustypotDriver::new(controller);

        driver.enable_torque(true).unwrap();
        driver.set_speed(&[1, 2], 5.0).unwrap();
        driver
            .write_goal_positions(&[1, 2], &[0.0, 90f64.to_radians()])
            .unwrap();
        let present = driver.read_present_positions().unwrap();
        assert!(present.iter().all(|p| p.abs() < 1e-9), "{present:?}");

        let log = log.lock().unwrap();
        // 8 torque WRITEs to addr 40, value 1.
        for (i, (id, instr, params)) in log[..8].iter().enumerate() {
            assert_eq!(
                (*id, *instr, params.as_slice()),
                (i as u8 + 1, 0x03, &[40u8, 1][..])
            );
        }
        // Speed then goal WRITEs, one per servo, in order.
        let writes: Vec<(u8, u8)> = log[8..12].iter().map(|(id, _, p)| (*id, p[0])).collect();
        assert_eq!(writes, [(1, 46), (2, 46), (1, 42), (2, 42)]);
        let regs = regs.lock().unwrap();
        // 0 rad -> raw 511, +90 deg -> raw 818 (fact sheet), big-endian.
        assert_eq!(&regs[1][42..44], &[0x01, 0xff]);
        assert_eq!(&regs[2][42..44], &818u16.to_be_bytes());
        // 8 READs of present_position (addr 56, 2 bytes).
        assert!(
            log[12..]
                .iter()
                .all(|(_, instr, p)| *instr == 0x02 && p == &[56, 2])
        );
        assert_eq!(log.len(), 20);
    }
}
