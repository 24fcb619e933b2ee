//! Sensor streaming, per processor: slots configured by token, started at a
//! period (the SDKs' 33 ms floor enforced), one data notification per slot
//! per period from that processor, stopped by stop, clear or sleep.

use rvr_protocol::{
    ErrorCode, Notification, Processor, Response, StreamStatus, StreamingConfig, StreamingData,
};

use super::{RvrTwin, index};
use twinrig_sim::MILLIS;

type Answer = Result<Option<Response>, ErrorCode>;

impl RvrTwin {
    /// Configures (or reconfigures) the slot of `config`'s token; every
    /// service must be one `processor` serves.
    pub(super) fn configure_streaming(
        &self,
        config: StreamingConfig,
        processor: Processor,
    ) -> Answer {
        if config
            .entries()
            .iter()
            .any(|e| !e.service.served_by(processor))
        {
            return Err(ErrorCode::BadParameterValue);
        }
        let mut s = self.state.borrow_mut();
        let st = &mut s.streaming[index(processor)];
        st.slots.retain(|c| c.token() != config.token());
        st.slots.push(config);
        Ok(None)
    }

    /// Starts streaming every slot of `processor` (none is fine: the Python
    /// SDK starts both processors whatever it configured).
    pub(super) fn start_streaming(&self, period_ms: u16, processor: Processor) -> Answer {
        if period_ms < self.state.borrow().config.min_stream_period_ms {
            return Err(ErrorCode::BadParameterValue);
        }
        let generation = {
            let mut s = self.state.borrow_mut();
            let st = &mut s.streaming[index(processor)];
            st.period = u64::from(period_ms) * MILLIS;
            st.generation += 1;
            st.generation
        };
        let t = self.clone();
        self.handle
            .spawn(format!("RVR {processor:?} streaming"), async move {
                t.stream(processor, generation).await
            });
        Ok(None)
    }

    pub(super) fn stop_streaming(&self, processor: Processor) -> Answer {
        self.state.borrow_mut().streaming[index(processor)].generation += 1;
        Ok(None)
    }

    pub(super) fn clear_streaming(&self, processor: Processor) -> Answer {
        let mut s = self.state.borrow_mut();
        let st = &mut s.streaming[index(processor)];
        st.generation += 1;
        st.slots.clear();
        Ok(None)
    }

    async fn stream(&self, processor: Processor, generation: u64) {
        let period = self.state.borrow().streaming[index(processor)].period;
        let mut next = self.handle.now().saturating_add(period);
        loop {
            self.handle.sleep_until(next).await;
            let slots = {
                let s = self.state.borrow();
                let st = &s.streaming[index(processor)];
                if st.generation != generation || !s.awake {
                    return;
                }
                st.slots.clone()
            };
            let sample = self.sample();
            for slot in &slots {
                if let Ok(data) = StreamingData::from_sample(slot, StreamStatus::Ok, &sample) {
                    self.notify(Notification::StreamingData(data), processor);
                }
            }
            next = next.saturating_add(period);
        }
    }
}
