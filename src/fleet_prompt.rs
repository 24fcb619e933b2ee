//! Operator prompts for fleet OTA: a sentence in, one fleet tool call out.
//!
//! [`IntentModel`] is the seam for a hosted model; [`OfflineIntents`] is the
//! deterministic default. It understands upgrade / rollback / status / cancel /
//! enable / disable, targets by device id, device type or the whole fleet, and
//! versions by number or "latest" / "previous". What it cannot map to exactly
//! one tool call gets an answer saying what is missing — never a guess that acts.

use std::fmt;

/// What a tool call acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One device (thing name).
    Device(String),
    /// Every device of a type.
    DeviceType(String),
    /// Every device.
    Fleet,
}

/// Which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest in the registry.
    Latest,
    /// The one before the current one.
    Previous,
    /// This exact version.
    Exact(String),
}

/// One fleet tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolCall {
    /// Create an OTA job.
    Upgrade {
        /// What to update.
        target: Target,
        /// To which version.
        version: VersionSpec,
    },
    /// Create an OTA job to an older version.
    Rollback {
        /// What to roll back.
        target: Target,
        /// To which version.
        version: VersionSpec,
    },
    /// Report versions (and jobs) for a target.
    Status {
        /// What to report on.
        target: Target,
    },
    /// Cancel a job (None: the running one).
    Cancel {
        /// Job id, if named.
        job: Option<String>,
    },
    /// Turn the OTA gate on or off for a type.
    SetOta {
        /// Device type.
        device_type: String,
        /// On or off.
        enabled: bool,
    },
}

/// The answer to a prompt that maps to no single tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unclear(pub String);

impl fmt::Display for Unclear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the fleet looks like, so names in a prompt can be resolved.
#[derive(Debug, Clone, Default)]
pub struct FleetNames {
    /// Device types (e.g. `pet_feeder`).
    pub device_types: Vec<String>,
    /// Device ids (thing names).
    pub devices: Vec<String>,
}

/// Turns an operator's prompt into a tool call.
pub trait IntentModel {
    /// The tool call for `prompt`, or what is unclear about it.
    fn intent(&self, prompt: &str, fleet: &FleetNames) -> Result<ToolCall, Unclear>;
}

/// The deterministic offline default.
#[derive(Debug, Default, Clone, Copy)]
pub struct OfflineIntents;

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || matches!(c, ',' | '?' | '!' | '"' | '\''))
        .map(|w| w.trim_end_matches('.').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn looks_like_version(w: &str) -> bool {
    let w = w.strip_prefix('v').unwrap_or(w);
    w.contains('.')
        && w.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

impl IntentModel for OfflineIntents {
    fn intent(&self, prompt: &str, fleet: &FleetNames) -> Result<ToolCall, Unclear> {
        let lower = prompt.to_lowercase();
        let ws = words(&lower);
        let original = words(prompt);
        let has = |list: &[&str]| ws.iter().any(|w| list.contains(&w.as_str()));

        // Targets: a device id (case-sensitive in the fleet, matched case-insensitively here),
        // a device type (with or without spaces/underscores), or the fleet.
        let named: Vec<&String> = fleet
            .devices
            .iter()
            .filter(|d| original.iter().any(|w| w.eq_ignore_ascii_case(d)))
            .collect();
        // Acting on the first of several named devices would be a guess.
        if named.len() > 1 {
            let list: Vec<&str> = named.iter().map(|d| d.as_str()).collect();
            return Err(Unclear(format!(
                "you named {} devices ({}); I act on one device, one device type or all devices at a time",
                named.len(),
                list.join(", ")
            )));
        }
        let device = named.first().copied();
        let squashed = lower.replace([' ', '-'], "_");
        let device_type = fleet
            .device_types
            .iter()
            .filter(|t| squashed.contains(&t.to_lowercase()))
            .max_by_key(|t| t.len());
        let whole_fleet = has(&["all", "every", "fleet", "everything", "everyone"]);
        let target = match (device, device_type, whole_fleet) {
            (Some(d), _, _) => Some(Target::Device(d.clone())),
            (None, Some(t), _) => Some(Target::DeviceType(t.clone())),
            (None, None, true) => Some(Target::Fleet),
            (None, None, false) => None,
        };
        let exact = ws
            .iter()
            .find(|w| looks_like_version(w))
            .map(|w| w.strip_prefix('v').unwrap_or(w).to_string());
        let version = if let Some(v) = exact {
            Some(VersionSpec::Exact(v))
        } else if has(&["latest", "newest", "current", "recent"]) {
            Some(VersionSpec::Latest)
        } else if has(&["previous", "prior", "last", "older", "earlier"]) {
            Some(VersionSpec::Previous)
        } else {
            None
        };
        let need_target = |what: &str| {
            Unclear(format!(
                "which devices should I {what}? name a device, a device type ({}), or say all devices",
                if fleet.device_types.is_empty() {
                    "none known".to_string()
                } else {
                    fleet.device_types.join(", ")
                }
            ))
        };

        if has(&["cancel", "abort", "stop", "halt"]) {
            let job = original
                .iter()
                .find(|w| w.to_lowercase().starts_with("job-"))
                .cloned();
            return Ok(ToolCall::Cancel { job });
        }
        if has(&["enable", "disable", "pause", "resume", "block", "allow"]) {
            let enabled = has(&["enable", "resume", "allow"]);
            return match device_type {
                Some(t) => Ok(ToolCall::SetOta {
                    device_type: t.clone(),
                    enabled,
                }),
                None => Err(Unclear(
                    "OTA is switched per device type: which type?".into(),
                )),
            };
        }
        if has(&["rollback", "roll", "revert", "downgrade"]) {
            let target = target.ok_or_else(|| need_target("roll back"))?;
            let version = version.unwrap_or(VersionSpec::Previous);
            if version == VersionSpec::Latest {
                return Err(Unclear(
                    "a rollback goes to an older version: name it, or say previous".into(),
                ));
            }
            return Ok(ToolCall::Rollback { target, version });
        }
        if has(&["update", "upgrade", "flash", "install", "deploy", "push"]) {
            let target = target.ok_or_else(|| need_target("update"))?;
            let version = version.ok_or_else(|| {
                Unclear("to which version? say a number like 1.2.0, or latest".into())
            })?;
            return Ok(ToolCall::Upgrade { target, version });
        }
        if has(&[
            "status", "versions", "version", "running", "show", "list", "report", "how",
        ]) {
            return Ok(ToolCall::Status {
                target: target.unwrap_or(Target::Fleet),
            });
        }
        Err(Unclear(
            "I can update, roll back, report status, cancel a job, or enable/disable OTA for a type; which one?".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> FleetNames {
        FleetNames {
            device_types: [
                "pet_feeder",
                "sphero_rvr",
                "amazing_hand",
                "air_quality",
                "smart_plug",
            ]
            .map(String::from)
            .to_vec(),
            devices: ["XIAO-RVR-07", "feeder-001"].map(String::from).to_vec(),
        }
    }

    fn ask(p: &str) -> Result<ToolCall, Unclear> {
        OfflineIntents.intent(p, &fleet())
    }

    #[test]
    fn the_prompts_from_the_issue() {
        assert_eq!(
            ask("update all pet_feeder devices to the latest firmware"),
            Ok(ToolCall::Upgrade {
                target: Target::DeviceType("pet_feeder".into()),
                version: VersionSpec::Latest
            })
        );
        assert_eq!(
            ask("roll XIAO-RVR-07 back to 1.0.0"),
            Ok(ToolCall::Rollback {
                target: Target::Device("XIAO-RVR-07".into()),
                version: VersionSpec::Exact("1.0.0".into())
            })
        );
        assert_eq!(
            ask("update the pet_feeder device group to the latest firmware"),
            Ok(ToolCall::Upgrade {
                target: Target::DeviceType("pet_feeder".into()),
                version: VersionSpec::Latest
            })
        );
    }

    #[test]
    fn more_phrasings() {
        assert_eq!(
            ask("Upgrade every device to v2.1.0"),
            Ok(ToolCall::Upgrade {
                target: Target::Fleet,
                version: VersionSpec::Exact("2.1.0".into())
            })
        );
        assert_eq!(
            ask("roll back the sphero rvr devices"),
            Ok(ToolCall::Rollback {
                target: Target::DeviceType("sphero_rvr".into()),
                version: VersionSpec::Previous
            })
        );
        assert_eq!(
            ask("what versions are the amazing hands running?"),
            Ok(ToolCall::Status {
                target: Target::DeviceType("amazing_hand".into())
            })
        );
        assert_eq!(
            ask("fleet status"),
            Ok(ToolCall::Status {
                target: Target::Fleet
            })
        );
        assert_eq!(
            ask("cancel job-17"),
            Ok(ToolCall::Cancel {
                job: Some("job-17".into())
            })
        );
        assert_eq!(
            ask("disable OTA for smart_plug"),
            Ok(ToolCall::SetOta {
                device_type: "smart_plug".into(),
                enabled: false
            })
        );
        assert_eq!(
            ask("enable updates for air quality sensors"),
            Ok(ToolCall::SetOta {
                device_type: "air_quality".into(),
                enabled: true
            })
        );
    }

    #[test]
    fn unclear_prompts_get_an_answer_not_an_action() {
        assert!(
            ask("update to the latest")
                .unwrap_err()
                .0
                .contains("which devices")
        );
        assert!(
            ask("update the pet_feeder devices")
                .unwrap_err()
                .0
                .contains("which version")
        );
        assert!(ask("roll pet_feeder to the latest").is_err());
        assert!(ask("disable OTA").unwrap_err().0.contains("which type"));
        assert!(ask("make me a sandwich").is_err());
        assert!(
            ask("update XIAO-RVR-07 and feeder-001 to 2.0.0")
                .unwrap_err()
                .0
                .contains("you named 2 devices")
        );
        assert!(ask("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,100}") {
            let _ = ask(&s);
        }
    }
}
