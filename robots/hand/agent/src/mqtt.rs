//! The agent's MQTT side, over the HAL's [`MqttClient`]: the action
//! subscriber and the ordered, non-blocking state publisher.
//!
//! On the Jetson these run on the MQTT client's thread while the worker
//! spells ([`crate::serve`] on its own thread); in the harness they are tasks
//! in virtual time. Both sides share the inbox and the outbox through the
//! small traits here, so each host brings its own locking.

use core::future::Future;

use twinrig_hal::mqtt::{MqttClient, MqttError, QoS};

use crate::payload::ActionError;
use crate::state::{action_topic, state_topic};

/// Where accepted actions go (the worker's queue), and rejections.
pub trait ActionQueue {
    /// Parses and queues a payload; the error says why it was rejected.
    fn offer(&self, payload: &[u8]) -> Result<u64, ActionError>;
    /// Unix seconds now, for the `ts` of an error state.
    fn now_s(&self) -> u64;
}

/// States waiting to be published, in order.
pub trait Outbox {
    /// Queues a payload; never blocks (the worker must not wait on the network).
    fn push(&self, payload: Vec<u8>);
    /// The oldest waiting payload, once there is one.
    fn next(&self) -> impl Future<Output = Vec<u8>>;
}

/// Subscribes to `the-project/robotic-hand/{device}/action` (QoS 1) and hands
/// every payload to `queue`; a rejected payload gets its error state on the
/// outbox at once, so the user hears about it while a sentence is running.
/// Returns when the session fails.
pub async fn receive_actions<C: MqttClient>(
    client: &C,
    device: &str,
    queue: &impl ActionQueue,
    outbox: &impl Outbox,
) -> MqttError {
    if let Err(e) = client
        .subscribe(&action_topic(device), QoS::AtLeastOnce)
        .await
    {
        return e;
    }
    loop {
        match client.receive().await {
            Ok(msg) => {
                if let Err(e) = queue.offer(&msg.payload) {
                    outbox.push(e.to_state(queue.now_s()).to_json().into_bytes());
                }
            }
            Err(e) => return e,
        }
    }
}

/// Publishes the outbox on `the-project/robotic-hand/{device}/state` at QoS 1,
/// one at a time and in order. `published` is told each success. Returns when
/// the session fails (the payload in hand is lost with the session).
pub async fn publish_states<C: MqttClient>(
    client: &C,
    device: &str,
    outbox: &impl Outbox,
    mut published: impl FnMut(),
) -> MqttError {
    let topic = state_topic(device);
    loop {
        let payload = outbox.next().await;
        match client.publish(&topic, &payload, QoS::AtLeastOnce).await {
            Ok(()) => published(),
            Err(e) => return e,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use embassy_futures::block_on;
    use twinrig_hal::mqtt::MqttMessage;

    use super::*;
    use crate::payload::ActionInbox;

    /// A session that delivers `incoming` and then fails; records the rest.
    #[derive(Default)]
    struct FakeSession {
        incoming: RefCell<VecDeque<Vec<u8>>>,
        subscribed: RefCell<Vec<String>>,
        published: RefCell<Vec<(String, Vec<u8>)>>,
    }

    impl MqttClient for FakeSession {
        fn client_id(&self) -> &str {
            "hand-1"
        }
        async fn subscribe(&self, filter: &str, _: QoS) -> Result<(), MqttError> {
            self.subscribed.borrow_mut().push(filter.into());
            Ok(())
        }
        async fn publish(&self, topic: &str, payload: &[u8], _: QoS) -> Result<(), MqttError> {
            self.published
                .borrow_mut()
                .push((topic.into(), payload.to_vec()));
            Ok(())
        }
        async fn receive(&self) -> Result<MqttMessage, MqttError> {
            let payload = self
                .incoming
                .borrow_mut()
                .pop_front()
                .ok_or(MqttError::Disconnected)?;
            Ok(MqttMessage {
                topic: action_topic("hand-1"),
                payload,
                qos: QoS::AtLeastOnce,
            })
        }
    }

    #[derive(Default)]
    struct Host {
        inbox: RefCell<ActionInbox>,
        outbox: RefCell<VecDeque<Vec<u8>>>,
    }

    impl ActionQueue for Host {
        fn offer(&self, payload: &[u8]) -> Result<u64, ActionError> {
            self.inbox.borrow_mut().offer(payload)
        }
        fn now_s(&self) -> u64 {
            1_770_550_850
        }
    }

    impl Outbox for Host {
        fn push(&self, payload: Vec<u8>) {
            self.outbox.borrow_mut().push_back(payload);
        }
        async fn next(&self) -> Vec<u8> {
            // The test only asks for what is there.
            self.outbox
                .borrow_mut()
                .pop_front()
                .expect("a waiting state")
        }
    }

    #[test]
    fn actions_are_queued_and_rejections_answered_at_once_in_order() {
        let session = FakeSession::default();
        session.incoming.borrow_mut().extend([
            br#"{"sentence": "HI"}"#.to_vec(),
            b"".to_vec(),
            b"plain words".to_vec(),
            br#"{"word": "x"}"#.to_vec(),
        ]);
        let host = Host::default();
        let end = block_on(receive_actions(&session, "hand-1", &host, &host));
        assert_eq!(end, MqttError::Disconnected);
        assert_eq!(
            *session.subscribed.borrow(),
            vec!["the-project/robotic-hand/hand-1/action".to_string()]
        );
        let mut inbox = host.inbox.borrow_mut();
        let texts: Vec<String> = std::iter::from_fn(|| inbox.next_job().map(|j| j.text)).collect();
        assert_eq!(texts, vec!["HI".to_string(), "plain words".to_string()]);
        let errors: Vec<String> = host
            .outbox
            .borrow()
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("\"code\":\"empty_payload\"") && errors[0].contains("1770550850")
        );
        assert!(errors[1].contains("\"code\":\"missing_sentence\""));
    }

    #[test]
    fn states_go_out_in_order_on_the_state_topic() {
        struct Failing(FakeSession, RefCell<u32>);
        impl MqttClient for Failing {
            fn client_id(&self) -> &str {
                "hand-1"
            }
            async fn subscribe(&self, f: &str, q: QoS) -> Result<(), MqttError> {
                self.0.subscribe(f, q).await
            }
            async fn publish(&self, t: &str, p: &[u8], q: QoS) -> Result<(), MqttError> {
                // The session drops after two publishes.
                *self.1.borrow_mut() += 1;
                if *self.1.borrow() > 2 {
                    return Err(MqttError::Disconnected);
                }
                self.0.publish(t, p, q).await
            }
            async fn receive(&self) -> Result<MqttMessage, MqttError> {
                self.0.receive().await
            }
        }
        let session = Failing(FakeSession::default(), RefCell::new(0));
        let host = Host::default();
        for p in ["a", "b", "c"] {
            host.push(p.as_bytes().to_vec());
        }
        let mut count = 0;
        let end = block_on(publish_states(&session, "hand-1", &host, || count += 1));
        assert_eq!(end, MqttError::Disconnected);
        assert_eq!(count, 2);
        let published = session.0.published.borrow();
        assert_eq!(
            published
                .iter()
                .map(|(t, p)| (t.as_str(), p.as_slice()))
                .collect::<Vec<_>>(),
            vec![
                ("the-project/robotic-hand/hand-1/state", &b"a"[..]),
                ("the-project/robotic-hand/hand-1/state", &b"b"[..]),
            ]
        );
    }
}
