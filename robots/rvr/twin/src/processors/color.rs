//! The colour sensor (Nordic sensor commands) and the io device (Nordic):
//! LEDs, colour palettes and colour identification.
//!
//! With detection on, the sensor's LED lights the floor and it reads the
//! floor colour ([`crate::ColorParams::floor_rgb`]); with it off the sensor
//! sees the dark underside (0, 0, 0), which matches no palette entry
//! (assumed). Classification is the best palette match
//! ([`crate::models::detect_color`]).

use rvr_protocol::constants::io::{LED_BITS_DEFINED, UNIDENTIFIED_COLOR};
use rvr_protocol::{
    ColorDetection, ColorMatches, ColorPalette, ErrorCode, LedValues, Notification, Processor,
    Response,
};

use super::{RvrTwin, TwinState};
use crate::models::{detect_color, identification_report, rgbc_counts};
use twinrig_sim::MILLIS;
use twinrig_sim::Nanos;

type Answer = Result<Option<Response>, ErrorCode>;

impl TwinState {
    /// The colour the sensor sees now.
    pub(super) fn sensed_rgb(&self) -> [u8; 3] {
        if self.color.detection {
            self.config.color.floor_rgb
        } else {
            [0, 0, 0]
        }
    }

    /// What colour detection reports now.
    pub(super) fn color_detection(&self) -> ColorDetection {
        detect_color(
            self.sensed_rgb(),
            &self.color.active_palette,
            &self.config.color,
        )
    }
}

impl RvrTwin {
    pub(super) fn enable_color_detection(&self, enabled: bool) -> Answer {
        self.state.borrow_mut().color.detection = enabled;
        Ok(None)
    }

    pub(super) fn rgbc(&self) -> Answer {
        let s = self.state.borrow();
        let [red, green, blue, clear] = rgbc_counts(s.sensed_rgb(), &s.config.color);
        Ok(Some(Response::RgbcSensorValues {
            red,
            green,
            blue,
            clear,
        }))
    }

    /// Colour detection notifications every `interval_ms` whose confidence
    /// reaches `min_confidence`. An interval below the streaming floor is
    /// refused (assumed: the firmware's limit is not published, and an
    /// interval of 0 would flood the line).
    pub(super) fn enable_color_notify(
        &self,
        enabled: bool,
        interval_ms: u16,
        min_confidence: u8,
    ) -> Answer {
        let generation = {
            let mut s = self.state.borrow_mut();
            if enabled && interval_ms < s.config.min_stream_period_ms {
                return Err(ErrorCode::BadParameterValue);
            }
            s.color.notify_generation += 1;
            s.color.notify_generation
        };
        if enabled {
            let t = self.clone();
            let interval = u64::from(interval_ms) * MILLIS;
            self.handle
                .spawn("RVR colour detection notifications", async move {
                    t.color_notifications(generation, interval, min_confidence)
                        .await
                });
        }
        Ok(None)
    }

    async fn color_notifications(&self, generation: u64, interval: Nanos, min_confidence: u8) {
        let mut next = self.handle.now().saturating_add(interval);
        loop {
            self.handle.sleep_until(next).await;
            let reading = {
                let s = self.state.borrow();
                if s.color.notify_generation != generation || !s.awake {
                    return;
                }
                s.color_detection()
            };
            if reading.confidence >= min_confidence {
                self.notify(Notification::ColorDetection(reading), Processor::Nordic);
            }
            next = next.saturating_add(interval);
        }
    }

    /// The answer is a colour detection notification, sent after the
    /// response whatever the notification settings (SDK docstring).
    pub(super) fn current_color_reading(&self) -> Answer {
        let reading = self.state.borrow().color_detection();
        self.defer(Notification::ColorDetection(reading));
        Ok(None)
    }

    /// Sets the LEDs of the mask; bit 31 names no LED. Asleep, refused
    /// (assumed: the SDK says sleep disables the LEDs).
    pub(super) fn set_leds(&self, leds: &LedValues) -> Answer {
        if leds.mask() & !LED_BITS_DEFINED != 0 {
            return Err(ErrorCode::BadParameterValue);
        }
        let mut s = self.state.borrow_mut();
        if !s.awake {
            return Err(ErrorCode::CommandRestricted);
        }
        for (channel, value) in leds.channels() {
            s.color.leds[channel as usize] = value;
        }
        Ok(None)
    }

    /// The LEDs go back to the robot's idle indication, which the twin
    /// shows as all user values off.
    pub(super) fn release_leds(&self) -> Answer {
        self.state.borrow_mut().color.leds = Default::default();
        Ok(None)
    }

    pub(super) fn active_palette(&self) -> Answer {
        let s = self.state.borrow();
        let palette =
            ColorPalette::new(&s.color.active_palette).map_err(|_| ErrorCode::CommandFailed)?;
        Ok(Some(Response::ActiveColorPalette(palette)))
    }

    /// Replaces the active palette (unmentioned slots become unassigned).
    /// Index 0xFF means "unidentified" and a slot given twice is ambiguous:
    /// both are bad values (assumed). Stored in index order.
    pub(super) fn set_active_palette(&self, palette: &ColorPalette) -> Answer {
        let mut entries = palette.entries().to_vec();
        entries.sort_by_key(|e| e.index);
        let duplicate = entries.windows(2).any(|w| w[0].index == w[1].index);
        if duplicate || entries.iter().any(|e| e.index == UNIDENTIFIED_COLOR) {
            return Err(ErrorCode::BadParameterValue);
        }
        self.state.borrow_mut().color.active_palette = entries;
        Ok(None)
    }

    pub(super) fn identification_report(&self, rgb: [u8; 3], threshold: u8) -> Answer {
        let s = self.state.borrow();
        let matches =
            identification_report(rgb, threshold, &s.color.active_palette, &s.config.color);
        let report = ColorMatches::new(&matches).map_err(|_| ErrorCode::CommandFailed)?;
        Ok(Some(Response::ColorIdentificationReport(report)))
    }

    /// Loads a stored palette; an index never saved is a bad value
    /// (assumed). Palette 0 holds the power-on palette.
    pub(super) fn load_palette(&self, index: u8) -> Answer {
        let mut s = self.state.borrow_mut();
        let palette = s
            .color
            .saved_palettes
            .get(&index)
            .cloned()
            .ok_or(ErrorCode::BadParameterValue)?;
        s.color.active_palette = palette;
        Ok(None)
    }

    pub(super) fn save_palette(&self, index: u8) -> Answer {
        let mut s = self.state.borrow_mut();
        let active = s.color.active_palette.clone();
        s.color.saved_palettes.insert(index, active);
        Ok(None)
    }
}
