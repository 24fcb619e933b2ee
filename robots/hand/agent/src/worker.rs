//! The single worker: owns the hand, runs one message at a time through a fresh
//! agent, publishes states and caches the last letter state.

use twinrig_hal::Clock;

use crate::agent::{
    AgentLimits, AgentRun, FINGERSPELL_TOOL, Model, ToolCall, ToolResult, Tools, run_agent,
};
use crate::driver::{DriverError, HandDriver, Pause};
use crate::payload::{ActionError, ActionInbox, Job};
use crate::spell::{Hand, SpellOutcome};
use crate::state::{StateMessage, StateSink};

/// What handling one message did.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageReport {
    /// The job.
    pub job: Job,
    /// The agent's run (usage, executed and cancelled calls, stop reason).
    pub run: AgentRun,
    /// Outcomes of the `fingerspell` calls that succeeded.
    pub spelled: Vec<SpellOutcome>,
}

/// Publishes to the real sink and caches the last letter state.
struct Caching<'a> {
    sink: &'a mut dyn StateSink,
    last: &'a mut Option<StateMessage>,
}

impl StateSink for Caching<'_> {
    fn publish(&mut self, state: &StateMessage) {
        if !state.is_error() {
            *self.last = Some(state.clone());
        }
        self.sink.publish(state);
    }
}

struct HandTools<'a, D, P, C> {
    hand: &'a mut Hand<D, P, C>,
    sink: Caching<'a>,
    spelled: Vec<SpellOutcome>,
}

impl<D: HandDriver, P: Pause, C: Clock> Tools for HandTools<'_, D, P, C> {
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let fail = |content: String| ToolResult {
            id: call.id.clone(),
            content,
            is_error: true,
        };
        if call.name != FINGERSPELL_TOOL {
            return fail(format!(
                "unknown tool {:?}; the only tool is {FINGERSPELL_TOOL}",
                call.name
            ));
        }
        let Some(text) = call.input.get("text").and_then(|t| t.as_str()) else {
            return fail("fingerspell needs a string argument \"text\"".into());
        };
        match self.hand.fingerspell(text, &mut self.sink) {
            Ok(outcome) => {
                let content = serde_json::json!({
                    "letters": outcome.letters,
                    "spaces": outcome.spaces,
                    "skipped": outcome.skipped,
                })
                .to_string();
                self.spelled.push(outcome);
                ToolResult {
                    id: call.id.clone(),
                    content,
                    is_error: false,
                }
            }
            Err(e) => {
                let ts = self.hand.ts();
                self.sink
                    .publish(&StateMessage::error("driver_error", e.to_string(), ts));
                fail(e.to_string())
            }
        }
    }
}

/// The worker. Generic over the model, the hardware seams and the state sink.
pub struct Worker<M, D, P, C, S> {
    /// The hand (driver, pauses, clock, table, calibration, timing).
    pub hand: Hand<D, P, C>,
    /// The model, shared by every message; each message still gets a fresh conversation.
    pub model: M,
    /// Where states go.
    pub sink: S,
    /// Per-invocation caps.
    pub limits: AgentLimits,
    last_state: Option<StateMessage>,
}

impl<M: Model, D: HandDriver, P: Pause, C: Clock, S: StateSink> Worker<M, D, P, C, S> {
    /// A worker with default limits.
    pub fn new(hand: Hand<D, P, C>, model: M, sink: S) -> Self {
        Worker {
            hand,
            model,
            sink,
            limits: AgentLimits::default(),
            last_state: None,
        }
    }

    /// Torque on for all 8 servos.
    pub fn start(&mut self) -> Result<(), DriverError> {
        self.hand.driver.enable_torque(true)
    }

    /// Torque off for all 8 servos (SIGINT/SIGTERM, scenario stop).
    pub fn shutdown(&mut self) -> Result<(), DriverError> {
        self.hand.driver.enable_torque(false)
    }

    /// The last letter state published (the video slice appends its URL to it).
    pub fn last_state(&self) -> Option<&StateMessage> {
        self.last_state.as_ref()
    }

    /// Publishes a state (a letter state also becomes the cached last state).
    pub fn publish(&mut self, state: StateMessage) {
        if !state.is_error() {
            self.last_state = Some(state.clone());
        }
        self.sink.publish(&state);
    }

    /// Publishes the error state for a rejected payload.
    pub fn reject(&mut self, error: &ActionError) {
        let state = error.to_state(self.hand.ts());
        self.sink.publish(&state);
    }

    /// Handles one message with a fresh agent.
    pub fn handle(&mut self, job: Job) -> MessageReport {
        let mut tools = HandTools {
            hand: &mut self.hand,
            sink: Caching {
                sink: &mut self.sink,
                last: &mut self.last_state,
            },
            spelled: Vec::new(),
        };
        let run = run_agent(&mut self.model, &job.text, &mut tools, self.limits);
        let spelled = tools.spelled;
        if let crate::agent::StopReason::ModelError(e) = &run.stop {
            let state = StateMessage::error("model_error", e.clone(), self.hand.ts());
            self.sink.publish(&state);
        }
        MessageReport { job, run, spelled }
    }
}

/// Inbox and worker in one value, for a single-threaded host (the harness's
/// executor): `on_action` from the MQTT side, `run_next` from the worker side.
pub struct HandAgent<M, D, P, C, S> {
    /// Waiting messages.
    pub inbox: ActionInbox,
    /// The worker.
    pub worker: Worker<M, D, P, C, S>,
}

impl<M: Model, D: HandDriver, P: Pause, C: Clock, S: StateSink> HandAgent<M, D, P, C, S> {
    /// An agent with the default queue bound.
    pub fn new(worker: Worker<M, D, P, C, S>) -> Self {
        HandAgent {
            inbox: ActionInbox::default(),
            worker,
        }
    }

    /// An action payload arrived: queue it, or publish an error state.
    pub fn on_action(&mut self, payload: &[u8]) -> Result<u64, ActionError> {
        self.inbox
            .offer(payload)
            .inspect_err(|e| self.worker.reject(e))
    }

    /// Runs the oldest waiting message, if any.
    pub fn run_next(&mut self) -> Option<MessageReport> {
        let job = self.inbox.next_job()?;
        Some(self.worker.handle(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Conversation, Message, ModelError, ModelTurn, OfflineModel};
    use crate::driver::testing::{Bench, Call, FakeClock, FakePause, RecordingDriver};
    use std::cell::RefCell;
    use std::rc::Rc;

    type TestAgent<M> = HandAgent<M, RecordingDriver, FakePause, FakeClock, Vec<StateMessage>>;

    fn agent<M: Model>(bench: &Bench, model: M) -> TestAgent<M> {
        let hand = Hand::new(bench.driver(), bench.pause(), bench.clock());
        HandAgent::new(Worker::new(hand, model, Vec::new()))
    }

    #[test]
    fn hello_world_end_to_end_publishes_ten_letter_states() {
        let bench = Bench::new();
        let mut a = agent(&bench, OfflineModel::default());
        a.on_action(br#"{"id":"x","sentence":"HELLO WORLD","ts":1}"#)
            .unwrap();
        let report = a.run_next().unwrap();
        assert_eq!(report.spelled.len(), 1);
        assert_eq!(report.spelled[0].letters, "HELLOWORLD");
        assert!(report.run.usage.total > 0);
        assert_eq!(a.worker.sink.len(), 10);
        match a.worker.last_state().unwrap() {
            StateMessage::Hand(h) => assert_eq!(h.letter, "D"),
            StateMessage::Error(_) => panic!(),
        }
    }

    #[test]
    fn malformed_payloads_publish_errors_and_never_touch_the_driver() {
        let bench = Bench::new();
        let mut a = agent(&bench, OfflineModel::default());
        let big = vec![b'x'; 5000];
        let bad: [&[u8]; 7] = [
            &[0xc3, 0x28],
            b"",
            b"   ",
            &big,
            br#"{"id":"1"}"#,
            br#"{"sentence":["a"]}"#,
            br#"{"sentence""#,
        ];
        for p in bad {
            assert!(a.on_action(p).is_err());
        }
        assert!(a.run_next().is_none());
        assert!(bench.calls().is_empty());
        assert_eq!(a.worker.sink.len(), 7);
        assert!(a.worker.sink.iter().all(StateMessage::is_error));
        assert!(a.worker.last_state().is_none());
    }

    #[test]
    fn queue_full_publishes_an_error_and_keeps_order() {
        let bench = Bench::new();
        let mut a = agent(&bench, OfflineModel::default());
        a.inbox = ActionInbox::new(2);
        a.on_action(b"ab").unwrap();
        a.on_action(b"cd").unwrap();
        let err = a.on_action(b"ef").unwrap_err();
        assert_eq!(err.code(), "queue_full");
        assert!(a.worker.sink[0].is_error());
        assert_eq!(a.run_next().unwrap().spelled[0].letters, "AB");
        assert_eq!(a.run_next().unwrap().spelled[0].letters, "CD");
        assert!(a.run_next().is_none());
    }

    /// Records every conversation it is given.
    #[derive(Clone, Default)]
    struct Recorder(Rc<RefCell<Vec<Conversation>>>);
    impl Model for Recorder {
        fn respond(&mut self, c: &Conversation) -> Result<ModelTurn, ModelError> {
            self.0.borrow_mut().push(c.clone());
            OfflineModel::default().respond(c)
        }
    }

    #[test]
    fn each_message_gets_a_fresh_agent() {
        let bench = Bench::new();
        let seen = Recorder::default();
        let mut a = agent(&bench, seen.clone());
        a.on_action(b"first secret").unwrap();
        a.on_action(br#"{"sentence":"second"}"#).unwrap();
        a.run_next().unwrap();
        let before = seen.0.borrow().len();
        a.run_next().unwrap();
        let convs = seen.0.borrow();
        let second: Vec<&Conversation> = convs[before..].iter().collect();
        assert_eq!(second.len(), 2);
        // The first turn of the second message sees exactly one message: its own.
        assert_eq!(second[0].messages, vec![Message::User("second".into())]);
        for c in &second {
            let dump = serde_json::to_string(c).unwrap();
            assert!(!dump.contains("first") && !dump.contains("secret"));
        }
    }

    #[test]
    fn runaway_model_spells_at_most_three_times() {
        struct Runaway;
        impl Model for Runaway {
            fn respond(&mut self, _: &Conversation) -> Result<ModelTurn, ModelError> {
                Ok(ModelTurn {
                    tool_calls: vec![ToolCall {
                        id: "again".into(),
                        name: FINGERSPELL_TOOL.into(),
                        input: serde_json::json!({"text": "a"}),
                    }],
                    ..ModelTurn::default()
                })
            }
        }
        let bench = Bench::new();
        let mut a = agent(&bench, Runaway);
        a.on_action(b"a").unwrap();
        let report = a.run_next().unwrap();
        assert_eq!(report.spelled.len(), 3);
        assert_eq!(report.run.cancelled.len(), 12 - 3);
        assert_eq!(a.worker.sink.len(), 3);
    }

    #[test]
    fn driver_failure_publishes_an_error_state() {
        let bench = Bench::new();
        bench.fail_after(0);
        let mut a = agent(&bench, OfflineModel::default());
        a.on_action(b"a").unwrap();
        let report = a.run_next().unwrap();
        assert!(report.spelled.is_empty());
        assert!(report.run.executed[0].1.is_error);
        match &a.worker.sink[0] {
            StateMessage::Error(e) => assert_eq!(e.error.code, "driver_error"),
            StateMessage::Hand(_) => panic!(),
        }
    }

    #[test]
    fn start_and_shutdown_toggle_torque() {
        let bench = Bench::new();
        let mut a = agent(&bench, OfflineModel::default());
        a.worker.start().unwrap();
        a.worker.shutdown().unwrap();
        assert_eq!(bench.calls(), vec![Call::Torque(true), Call::Torque(false)]);
    }
}
