//! The fleet's named checks for `invariants:` (a `check:` without
//! `device`), on the fleet sample the run builds at every sample period
//! ([`sample`]):
//!
//! - `boots_valid_image`: every time a fleet device (re)boots — power cuts,
//!   new images and rollbacks included — its flash boots an image whose
//!   header reads and whose SHA-256 is the one otadata records: no device is
//!   ever bricked.
//! - `in_progress_within_cap`: a job never has more executions IN_PROGRESS
//!   than its `max_in_progress` (or `at_most`, when given); `job:` picks one
//!   job, else every job the scenario creates.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use twinrig_kind::invariant::{InvariantCheck, InvariantModel, InvariantOf, shown};
use twinrig_kind::{NoParams, Params};
use twinrig_sim::Nanos;

/// The checks, for [`crate::scenario::DeviceKinds::invariants`] and the run.
pub static INVARIANTS: [&dyn InvariantModel; 2] = [&BOOTS_VALID_IMAGE, &IN_PROGRESS_WITHIN_CAP];

/// The fleet sample the checks read: the devices that (re)booted since the
/// previous sample with the version their flash boots (null: none valid),
/// and every job's IN_PROGRESS count with its cap.
pub fn sample(
    fleet: &super::Fleet,
    cloud: &crate::cloud_twin::CloudTwin,
    seen_boots: &mut Vec<Nanos>,
) -> Value {
    seen_boots.resize(fleet.devices().len(), Nanos::MAX);
    let booted: Vec<Value> = fleet
        .devices()
        .iter()
        .zip(seen_boots.iter_mut())
        .filter(|(d, seen)| d.last_boot.get() != **seen)
        .map(|(d, seen)| {
            *seen = d.last_boot.get();
            json!({ "id": d.id, "at": *seen, "version": d.flash_version() })
        })
        .collect();
    let jobs = cloud.jobs().borrow();
    let jobs: Vec<Value> = fleet
        .jobs_created()
        .borrow()
        .iter()
        .filter_map(|id| jobs.describe_job(id).ok())
        .map(|j| {
            json!({
                "job": j.job_id,
                "in_progress": j.job_process_details.number_of_in_progress_things,
                "max_in_progress": j.max_in_progress,
            })
        })
        .collect();
    json!({ "booted": booted, "jobs": jobs })
}

static BOOTS_VALID_IMAGE: InvariantOf<NoParams> = InvariantOf::new(
    "boots_valid_image",
    "every fleet device boots a valid image at every (re)boot",
    |_, _| Box::new(BootsValidImage { boots: 0 }),
);

struct BootsValidImage {
    boots: u64,
}

impl InvariantCheck for BootsValidImage {
    fn description(&self) -> String {
        "every fleet device boots a valid image".to_owned()
    }

    fn samples(&self) -> bool {
        true
    }

    fn on_sample(&mut self, _at: Nanos, fleet: &Value) -> Result<(), String> {
        for boot in fleet["booted"].as_array().into_iter().flatten() {
            self.boots += 1;
            if boot["version"].is_null() {
                let at = boot["at"].as_u64().unwrap_or(0);
                return Err(format!(
                    "{} (re)booted at {} and its flash boots no valid image",
                    boot["id"].as_str().unwrap_or("?"),
                    shown(at)
                ));
            }
        }
        Ok(())
    }
}

/// Parameters of `in_progress_within_cap`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InProgressParams {
    /// The job (default: every job the scenario creates).
    #[serde(default)]
    pub job: Option<String>,
    /// The cap (default: each job's own `max_in_progress`).
    #[serde(default)]
    pub at_most: Option<u64>,
}

impl Params for InProgressParams {}

static IN_PROGRESS_WITHIN_CAP: InvariantOf<InProgressParams> = InvariantOf::new(
    "in_progress_within_cap",
    "no job has more executions IN_PROGRESS than its max_in_progress (or at_most)",
    |_, p| {
        Box::new(InProgressWithinCap {
            job: p.job,
            at_most: p.at_most,
        })
    },
);

struct InProgressWithinCap {
    job: Option<String>,
    at_most: Option<u64>,
}

impl InvariantCheck for InProgressWithinCap {
    fn description(&self) -> String {
        let job = self.job.as_deref().unwrap_or("every job");
        match self.at_most {
            Some(n) => format!("{job}: at most {n} executions IN_PROGRESS"),
            None => format!("{job}: at most max_in_progress executions IN_PROGRESS"),
        }
    }

    fn samples(&self) -> bool {
        true
    }

    fn on_sample(&mut self, _at: Nanos, fleet: &Value) -> Result<(), String> {
        for j in fleet["jobs"].as_array().into_iter().flatten() {
            let id = j["job"].as_str().unwrap_or("");
            if self.job.as_deref().is_some_and(|want| want != id) {
                continue;
            }
            let n = j["in_progress"].as_u64().unwrap_or(0);
            let cap = self
                .at_most
                .unwrap_or_else(|| j["max_in_progress"].as_u64().unwrap_or(u64::MAX));
            if n > cap {
                return Err(format!("job {id}: {n} executions IN_PROGRESS, cap {cap}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(model: &dyn InvariantModel, params: Value) -> Box<dyn InvariantCheck> {
        model.build("", params.as_object().unwrap()).unwrap()
    }

    #[test]
    fn a_boot_without_a_valid_image_breaks_it() {
        let mut c = build(&BOOTS_VALID_IMAGE, json!({}));
        let ok = json!({ "booted": [{ "id": "f-1", "at": 0, "version": "1.0.0" }], "jobs": [] });
        c.on_sample(0, &ok).unwrap();
        let bricked =
            json!({ "booted": [{ "id": "f-2", "at": 2_000_000_000u64, "version": null }] });
        assert_eq!(
            c.on_sample(1, &bricked).unwrap_err(),
            "f-2 (re)booted at 2s and its flash boots no valid image"
        );
    }

    #[test]
    fn in_progress_over_the_cap_breaks_it() {
        let jobs = json!({ "jobs": [
            { "job": "a", "in_progress": 3, "max_in_progress": 2 },
            { "job": "b", "in_progress": 1, "max_in_progress": 5 },
        ] });
        let e = build(&IN_PROGRESS_WITHIN_CAP, json!({}))
            .on_sample(0, &jobs)
            .unwrap_err();
        assert_eq!(e, "job a: 3 executions IN_PROGRESS, cap 2");
        build(&IN_PROGRESS_WITHIN_CAP, json!({ "job": "b" }))
            .on_sample(0, &jobs)
            .unwrap();
        let e = build(&IN_PROGRESS_WITHIN_CAP, json!({ "job": "b", "at_most": 0 }))
            .on_sample(0, &jobs)
            .unwrap_err();
        assert_eq!(e, "job b: 1 executions IN_PROGRESS, cap 0");
    }
}
