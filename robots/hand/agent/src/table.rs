//! The ASL letter table: data, not code.
//!
//! The bundled table lives in `data/asl_letters.json` and is compiled in with
//! `include_str!`. **Every value in it is assumed**: the real edge agent's A–Z table
//! was not found. The file says how each letter was derived (from the frontend's
//! older 4-value table, mapped onto the Amazing Hand's named-pose frame and the one
//! published 8-value example, letter E).
//!
//! Frame: degrees per finger as `[angle_1, angle_2]`, relative to the calibrated
//! middle position; `angle_1` drives the odd servo id, `angle_2` the even one;
//! flexion is `angle_1` positive and `angle_2` negative (closed = `[90, -90]`,
//! open straight = `[-35, 35]`). The ring finger stands in for the pinky.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The bundled table's JSON text.
pub const BUNDLED_TABLE_JSON: &str = include_str!("../data/asl_letters.json");

/// The four fingers of the Amazing Hand, in the order the agent drives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finger {
    /// Index finger: servos 1 (angle_1) and 2 (angle_2).
    Index,
    /// Middle finger: servos 3 and 4.
    Middle,
    /// Ring finger (stands in for the pinky): servos 5 and 6.
    Ring,
    /// Thumb: servos 7 and 8.
    Thumb,
}

impl Finger {
    /// All fingers in drive order: index, middle, ring, thumb.
    pub const ALL: [Finger; 4] = [Finger::Index, Finger::Middle, Finger::Ring, Finger::Thumb];

    /// The two servo ids of this finger: (angle_1 servo, angle_2 servo).
    pub fn servo_ids(self) -> [u8; 2] {
        let first = 1 + 2 * self as u8;
        [first, first + 1]
    }

    /// Position of the finger in [`Finger::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lowercase name used in JSON (`index`, `middle`, `ring`, `thumb`).
    pub fn name(self) -> &'static str {
        match self {
            Finger::Index => "index",
            Finger::Middle => "middle",
            Finger::Ring => "ring",
            Finger::Thumb => "thumb",
        }
    }
}

/// A hand pose: `[angle_1, angle_2]` in degrees per finger, in [`Finger::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose(pub [[f64; 2]; 4]);

impl Pose {
    /// The two angles of one finger.
    pub fn finger(&self, finger: Finger) -> [f64; 2] {
        self.0[finger.index()]
    }

    /// The same pose with every angle clamped to ±`limit` degrees.
    pub fn clamped(&self, limit: f64) -> Pose {
        let mut out = self.0;
        for pair in &mut out {
            for a in pair {
                *a = a.clamp(-limit, limit);
            }
        }
        Pose(out)
    }
}

/// One letter's entry in the JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LetterEntry {
    /// Index finger `[angle_1, angle_2]`, degrees.
    pub index: [f64; 2],
    /// Middle finger.
    pub middle: [f64; 2],
    /// Ring finger (for the pinky).
    pub ring: [f64; 2],
    /// Thumb.
    pub thumb: [f64; 2],
    /// True when the value is not from a verified source (all of the bundled table).
    #[serde(default)]
    pub assumed: bool,
    /// Where the value came from.
    #[serde(default)]
    pub from: String,
}

impl LetterEntry {
    /// The entry as a pose.
    pub fn pose(&self) -> Pose {
        Pose([self.index, self.middle, self.ring, self.thumb])
    }
}

/// The whole JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableFile {
    /// Format tag.
    #[serde(default)]
    pub format: String,
    /// Provenance statement.
    #[serde(default)]
    pub status: String,
    /// Angle frame description.
    #[serde(default)]
    pub frame: String,
    /// How the values were derived.
    #[serde(default)]
    pub derivation: String,
    /// Letter (uppercase, one character) -> entry.
    pub letters: BTreeMap<String, LetterEntry>,
}

/// Why a table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The text is not a valid table document.
    #[error("ASL table is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A key is not a single letter A–Z.
    #[error("ASL table key {0:?} is not a single letter A-Z")]
    BadKey(String),
    /// An angle is NaN or infinite.
    #[error("ASL table letter {0} has a non-finite angle")]
    NonFinite(char),
}

/// A loaded letter table: uppercase letter -> pose.
#[derive(Debug, Clone, PartialEq)]
pub struct AslTable {
    poses: BTreeMap<char, Pose>,
}

impl AslTable {
    /// The bundled table (`data/asl_letters.json`).
    pub fn bundled() -> AslTable {
        AslTable::from_json(BUNDLED_TABLE_JSON).expect("bundled ASL table is valid (tested)")
    }

    /// Parses a table document. Keys must be single letters A–Z (any case, stored
    /// uppercase); letters missing from the table are skipped when spelling.
    /// Angles outside ±90 are accepted here and clamped by the planner.
    pub fn from_json(text: &str) -> Result<AslTable, TableError> {
        let file: TableFile = serde_json::from_str(text)?;
        let mut poses = BTreeMap::new();
        for (key, entry) in &file.letters {
            let mut chars = key.chars();
            let letter = match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphabetic() => c.to_ascii_uppercase(),
                _ => return Err(TableError::BadKey(key.clone())),
            };
            let pose = entry.pose();
            if pose.0.iter().flatten().any(|a| !a.is_finite()) {
                return Err(TableError::NonFinite(letter));
            }
            poses.insert(letter, pose);
        }
        Ok(AslTable { poses })
    }

    /// A table from poses directly (tests, custom calibration per letter).
    pub fn from_poses(poses: impl IntoIterator<Item = (char, Pose)>) -> AslTable {
        AslTable {
            poses: poses
                .into_iter()
                .map(|(c, p)| (c.to_ascii_uppercase(), p))
                .collect(),
        }
    }

    /// The pose for a letter (case-insensitive), if the table has it.
    pub fn pose(&self, letter: char) -> Option<Pose> {
        self.poses.get(&letter.to_ascii_uppercase()).copied()
    }

    /// The letters in the table, uppercase, sorted.
    pub fn letters(&self) -> impl Iterator<Item = char> + '_ {
        self.poses.keys().copied()
    }

    /// Number of letters.
    pub fn len(&self) -> usize {
        self.poses.len()
    }

    /// True when the table has no letters.
    pub fn is_empty(&self) -> bool {
        self.poses.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_table_has_all_26_letters_within_90_degrees() {
        let table = AslTable::bundled();
        assert_eq!(table.len(), 26);
        for c in 'A'..='Z' {
            let pose = table
                .pose(c)
                .unwrap_or_else(|| panic!("letter {c} missing"));
            for a in pose.0.iter().flatten() {
                assert!((-90.0..=90.0).contains(a), "{c}: {a} out of range");
            }
        }
        assert_eq!(table.pose('e'), table.pose('E'));
    }

    #[test]
    fn every_bundled_value_is_marked_assumed() {
        let file: TableFile = serde_json::from_str(BUNDLED_TABLE_JSON).unwrap();
        assert!(
            file.letters
                .values()
                .all(|e| e.assumed && !e.from.is_empty())
        );
        assert!(file.status.contains("ASSUMED"));
    }

    #[test]
    fn letter_e_matches_the_published_state_example() {
        let e = AslTable::bundled().pose('E').unwrap();
        assert_eq!(
            e.0,
            [[45.0, -45.0], [45.0, -45.0], [45.0, -45.0], [60.0, -60.0]]
        );
    }

    #[test]
    fn bad_keys_are_rejected() {
        let text = r#"{"letters": {"AB": {"index": [0,0], "middle": [0,0], "ring": [0,0], "thumb": [0,0]}}}"#;
        assert!(matches!(
            AslTable::from_json(text),
            Err(TableError::BadKey(_))
        ));
    }

    #[test]
    fn servo_ids_follow_the_hand_config() {
        assert_eq!(Finger::Index.servo_ids(), [1, 2]);
        assert_eq!(Finger::Middle.servo_ids(), [3, 4]);
        assert_eq!(Finger::Ring.servo_ids(), [5, 6]);
        assert_eq!(Finger::Thumb.servo_ids(), [7, 8]);
    }
}
