//! `twinrig ota "<prompt>" --endpoint URL` (`aws` feature): the same prompt
//! and fleet tools as a simulated session, through the AWS backend
//! ([`AwsFleet`], aws-sdk-iot and aws-sdk-iotdataplane) against a live
//! control plane: `twinrig serve cloud --http`, or AWS IoT with real
//! credentials. The devices are real (or `serve cloud`'s clients), so the
//! session does not follow a job to its end: it makes the prompt's calls,
//! then reports the job's and the fleet's status once.
//!
//! The firmware manifest (versions, SHA-256, sizes) comes from the fleet
//! file (`--fleet`), the description `serve cloud --fleet` publishes: the
//! same file serves both.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fleet::firmware_image;
use crate::fleet_prompt::OfflineIntents;
use crate::fleet_tools::{
    FleetBackend, PromptResult, PromptSession, Recording, Target, VersionInfo, run_prompt,
};
use crate::fleet_tools_aws::{AwsFleet, AwsFleetConfig, DeviceTypeSource};
use crate::ota_cli::{EXIT_UNCLEAR, OtaArgs, load_fleet};
use crate::scenario::fleet::FleetConfig;

/// The bucket named in job documents' presigned-URL placeholders. `serve
/// cloud` maps any bucket to its firmware registry; on AWS it is where the
/// images are (assumed name; give the real one there).
pub const FIRMWARE_BUCKET: &str = "twinrig-firmware";

/// How the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteOutcome {
    /// A job was created (it runs on the devices from here on).
    Created,
    /// A call that creates no job (status, cancel) was made.
    Done,
    /// A tool refused the call.
    Refused,
    /// The prompt was not understood; nothing was done.
    Unclear,
}

/// What the session did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteReport {
    /// The prompt.
    pub prompt: String,
    /// The control plane called.
    pub endpoint: String,
    /// How it ended.
    pub outcome: RemoteOutcome,
    /// The prompt's tool calls and job (its status right after).
    #[serde(flatten)]
    pub session: PromptSession,
}

/// The manifest the AWS backend lists versions from and writes job
/// documents with: every version of the fleet's firmware, as `serve cloud
/// --fleet` publishes it.
pub fn manifest(fleet: &FleetConfig) -> Result<BTreeMap<String, Vec<VersionInfo>>, String> {
    let mut out: BTreeMap<String, Vec<VersionInfo>> = BTreeMap::new();
    for set in &fleet.firmware {
        for v in &set.versions {
            let image =
                firmware_image(&set.device_type, *v, set.size.0).map_err(|e| e.to_string())?;
            out.entry(set.device_type.clone())
                .or_default()
                .push(VersionInfo {
                    version: v.to_string(),
                    sha256: twinrig_cloud::registry::sha256_hex(&image),
                    size: image.len() as u64,
                    published_at: 0,
                });
        }
    }
    Ok(out)
}

/// Runs the prompt against `endpoint`; the exit code.
pub fn command(args: &OtaArgs, endpoint: &str) -> u8 {
    let rollout = match args.rollout() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let (file, _) = match load_fleet(args.fleet.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return 2;
        }
    };
    let firmware = match manifest(&file.fleet) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let config = AwsFleetConfig {
        region: args.region.clone(),
        account_id: args.account_id.clone(),
        device_types: DeviceTypeSource::ThingGroups,
        firmware_bucket: FIRMWARE_BUCKET.into(),
        presign_role_arn: format!("arn:aws:iam::{}:role/twinrig-ota", args.account_id),
        url_expiry_s: 3600,
        firmware,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the SDK's runtime: {e}");
            return 2;
        }
    };
    let report = runtime.block_on(async {
        let fleet = AwsFleet::connect(config, Some(endpoint)).await;
        session(&fleet, args, endpoint, &rollout).await
    });
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    } else {
        print!("{}", render_text(&report));
    }
    match report.outcome {
        RemoteOutcome::Created | RemoteOutcome::Done => 0,
        RemoteOutcome::Refused => 1,
        RemoteOutcome::Unclear => EXIT_UNCLEAR,
    }
}

async fn session(
    fleet: &AwsFleet,
    args: &OtaArgs,
    endpoint: &str,
    rollout: &twinrig_cloud::jobs::RolloutSettings,
) -> RemoteReport {
    let mut job_id = Some(args.job_id.clone());
    let mut next_id = || job_id.take().unwrap_or_default();
    let prompt = run_prompt(fleet, &OfflineIntents, &args.prompt, &mut next_id, rollout).await;
    let mut report = RemoteReport {
        prompt: args.prompt.clone(),
        endpoint: endpoint.to_owned(),
        outcome: RemoteOutcome::Done,
        session: PromptSession {
            intent: prompt.intent,
            tool_calls: prompt.calls,
            ..PromptSession::default()
        },
    };
    match prompt.result {
        PromptResult::Unclear(answer) => {
            report.outcome = RemoteOutcome::Unclear;
            report.session.answer = Some(answer);
        }
        PromptResult::Failed(why) => {
            report.outcome = RemoteOutcome::Refused;
            report.session.answer = Some(why);
        }
        PromptResult::Created(created) => {
            report.outcome = RemoteOutcome::Created;
            let recorded = Recording::new(fleet);
            report.session.job = recorded.job_status(&created.job_id).await.ok();
            let _ = recorded.fleet_status(&Target::Fleet).await;
            report.session.tool_calls.extend(recorded.into_calls());
            report.session.job_created = Some(created);
        }
        PromptResult::Status(_) | PromptResult::Canceled(_) | PromptResult::Gate(_) => {}
    }
    report
}

/// The report for people.
pub fn render_text(r: &RemoteReport) -> String {
    let mut out = format!(
        "prompt:   {}\nendpoint: {}\ntool calls:\n",
        r.prompt, r.endpoint
    );
    for (i, c) in r.session.tool_calls.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, c.summary));
    }
    if let Some(answer) = &r.session.answer {
        let label = if r.outcome == RemoteOutcome::Unclear {
            "not understood, nothing done"
        } else {
            "refused"
        };
        out.push_str(&format!("{label}: {answer}\n"));
    }
    if let Some(j) = &r.session.job {
        out.push_str(&format!(
            "job {}: {} ({} queued, {} in progress, {} done of {}); it runs on the devices from here\n",
            j.job_id,
            j.status,
            j.counts.queued,
            j.counts.in_progress,
            j.counts.done(),
            j.counts.total
        ));
    }
    out
}
