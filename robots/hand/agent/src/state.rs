//! State messages published on `the-project/robotic-hand/{device}/state` (QoS 1).
//!
//! A letter state has exactly the sheet's shape:
//! `{"gesture":"fingerspell","letter":"E","ts":1770550850,"fingers":{"index":{"angle_1":45,"angle_2":-45},...}}`
//! (`video_url` only when set). Angles are the commanded table angles after the
//! ±90° clamp and before calibration offsets, rounded to integers; `ts` is integer
//! seconds.
//!
//! An error state (bad payload, queue full, servo bus failure, model failure) is
//! `{"gesture":"error","ts":...,"error":{"code":"empty_payload","message":"..."}}`:
//! no `letter` and no `fingers`, so the UI (which appends non-empty letters) shows
//! nothing, and the cloud rule stores a record with `gesture = "error"`.

use serde::{Deserialize, Serialize};

use crate::table::{Finger, Pose};

/// The two joint angles of one finger, integer degrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerAngles {
    /// Servo with the odd id.
    pub angle_1: i64,
    /// Servo with the even id.
    pub angle_2: i64,
}

/// All four fingers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingers {
    /// Index finger.
    pub index: FingerAngles,
    /// Middle finger.
    pub middle: FingerAngles,
    /// Ring finger.
    pub ring: FingerAngles,
    /// Thumb.
    pub thumb: FingerAngles,
}

impl Fingers {
    /// From a pose in degrees (rounded).
    pub fn from_pose(pose: &Pose) -> Fingers {
        let f = |finger: Finger| {
            let [a, b] = pose.finger(finger);
            FingerAngles {
                angle_1: a.round() as i64,
                angle_2: b.round() as i64,
            }
        };
        Fingers {
            index: f(Finger::Index),
            middle: f(Finger::Middle),
            ring: f(Finger::Ring),
            thumb: f(Finger::Thumb),
        }
    }
}

/// A hand state after a letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandState {
    /// Always `"fingerspell"` for letters.
    pub gesture: String,
    /// The letter, uppercase.
    pub letter: String,
    /// Integer seconds.
    pub ts: u64,
    /// Commanded angles.
    pub fingers: Fingers,
    /// Presigned video URL (appended to the last state by the video slice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_url: Option<String>,
}

/// Error details of an error state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code (`invalid_utf8`, `empty_payload`, ...).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// An error state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorState {
    /// Always `"error"`.
    pub gesture: String,
    /// Integer seconds.
    pub ts: u64,
    /// What went wrong.
    pub error: ErrorBody,
}

/// Anything published on the state topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StateMessage {
    /// After a letter.
    Hand(HandState),
    /// After a rejected message or a failure.
    Error(ErrorState),
}

impl StateMessage {
    /// A letter state.
    pub fn letter(letter: char, ts: u64, pose: &Pose) -> StateMessage {
        StateMessage::Hand(HandState {
            gesture: "fingerspell".into(),
            letter: letter.to_string(),
            ts,
            fingers: Fingers::from_pose(pose),
            video_url: None,
        })
    }

    /// An error state.
    pub fn error(code: &str, message: impl Into<String>, ts: u64) -> StateMessage {
        StateMessage::Error(ErrorState {
            gesture: "error".into(),
            ts,
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
            },
        })
    }

    /// The JSON payload.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("state messages always serialize")
    }

    /// True for an error state.
    pub fn is_error(&self) -> bool {
        matches!(self, StateMessage::Error(_))
    }
}

/// Where state messages go. Must not block (the real agent hands them to a
/// one-worker publisher that publishes at QoS 1).
pub trait StateSink {
    /// Queue a state message for publishing.
    fn publish(&mut self, state: &StateMessage);
}

impl StateSink for Vec<StateMessage> {
    fn publish(&mut self, state: &StateMessage) {
        self.push(state.clone());
    }
}

impl<S: StateSink + ?Sized> StateSink for &mut S {
    fn publish(&mut self, state: &StateMessage) {
        (**self).publish(state)
    }
}

/// The state topic for a device.
pub fn state_topic(device: &str) -> String {
    format!("the-project/robotic-hand/{device}/state")
}

/// The action topic for a device.
pub fn action_topic(device: &str) -> String {
    format!("the-project/robotic-hand/{device}/action")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_state_has_exactly_the_sheet_shape() {
        let pose = Pose([[45.0, -45.0], [45.0, -45.0], [45.0, -45.0], [60.0, -60.0]]);
        let json = StateMessage::letter('E', 1770550850, &pose).to_json();
        let expected = serde_json::json!({
            "gesture": "fingerspell", "letter": "E", "ts": 1770550850,
            "fingers": {
                "index": {"angle_1": 45, "angle_2": -45},
                "middle": {"angle_1": 45, "angle_2": -45},
                "ring": {"angle_1": 45, "angle_2": -45},
                "thumb": {"angle_1": 60, "angle_2": -60}
            }
        });
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            expected
        );
    }

    #[test]
    fn error_state_shape() {
        let json = StateMessage::error("empty_payload", "empty", 7).to_json();
        assert_eq!(
            json,
            r#"{"gesture":"error","ts":7,"error":{"code":"empty_payload","message":"empty"}}"#
        );
    }

    #[test]
    fn topics() {
        assert_eq!(
            action_topic("XIAOAmazingHandRight"),
            "the-project/robotic-hand/XIAOAmazingHandRight/action"
        );
        assert_eq!(
            state_topic("XIAOAmazingHandRight"),
            "the-project/robotic-hand/XIAOAmazingHandRight/state"
        );
    }
}
