//! API and shell (echo is answered in `execute`), system info and
//! connection: identity from [`crate::Identity`], up-time in virtual time.

use rvr_protocol::{ErrorCode, Processor, Response, Text};

use super::RvrTwin;
use twinrig_sim::MILLIS;

type Answer = Result<Option<Response>, ErrorCode>;

/// A configured text as a response value; a value the wire cannot carry
/// (too long, a NUL) makes the command fail instead of panicking.
fn text(s: &str) -> Result<Text, ErrorCode> {
    Text::new(s).map_err(|_| ErrorCode::CommandFailed)
}

impl RvrTwin {
    pub(super) fn main_application_version(&self, processor: Processor) -> Answer {
        let id = &self.state.borrow().config.identity;
        Ok(Some(Response::MainApplicationVersion(match processor {
            Processor::Nordic => id.nordic_version,
            Processor::St => id.st_version,
        })))
    }

    pub(super) fn bootloader_version(&self, processor: Processor) -> Answer {
        let id = &self.state.borrow().config.identity;
        Ok(Some(Response::BootloaderVersion(match processor {
            Processor::Nordic => id.nordic_bootloader,
            Processor::St => id.st_bootloader,
        })))
    }

    pub(super) fn processor_name(&self, processor: Processor) -> Answer {
        let id = &self.state.borrow().config.identity;
        let name = match processor {
            Processor::Nordic => &id.nordic_name,
            Processor::St => &id.st_name,
        };
        Ok(Some(Response::ProcessorName(text(name)?)))
    }

    pub(super) fn board_revision(&self) -> Answer {
        let id = &self.state.borrow().config.identity;
        Ok(Some(Response::BoardRevision(id.board_revision)))
    }

    pub(super) fn mac_address(&self) -> Answer {
        let id = &self.state.borrow().config.identity;
        Ok(Some(Response::MacAddress(text(&id.mac_address)?)))
    }

    pub(super) fn stats_id(&self) -> Answer {
        let id = &self.state.borrow().config.identity;
        Ok(Some(Response::StatsId(id.stats_id)))
    }

    pub(super) fn sku(&self) -> Answer {
        let id = &self.state.borrow().config.identity;
        Ok(Some(Response::Sku(text(&id.sku)?)))
    }

    pub(super) fn bluetooth_name(&self) -> Answer {
        let id = &self.state.borrow().config.identity;
        Ok(Some(Response::BluetoothAdvertisingName(text(
            &id.bluetooth_name,
        )?)))
    }

    /// Virtual milliseconds since the twin was powered on.
    pub(super) fn core_up_time(&self) -> Answer {
        let boot = self.state.borrow().boot;
        Ok(Some(Response::CoreUpTime {
            ms: (self.handle.now() - boot) / MILLIS,
        }))
    }
}
