//! The `iot` control plane: the thing registry (things, types, groups), the
//! jobs operations, the event configurations (job execution events) and
//! DescribeEndpoint, on AWS's REST paths with AWS's
//! JSON shapes and error codes.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use twinrig_cloud::jobs::{CreateJobRequest, JobStatus, JobsError};
use twinrig_cloud::things::{Page, ThingsError};

use super::{Answer, Api, later};
use crate::serve::http::{self, Request};

/// Answers one control-plane request.
pub(super) fn answer(request: &Request, api: &mut Api<'_>) -> Answer {
    let body: Value = if request.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(e) => return Answer::Now(invalid(&format!("the body is not JSON: {e}"))),
        }
    };
    let labels = request.labels();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    if let Some(things) = registry(method, &labels, request, &body, api) {
        return Answer::Now(
            things.unwrap_or_else(|e| http::error_response(e.status(), e.name(), e.message())),
        );
    }
    if let Some(answer) = super::security::answer(method, &labels, request, &body, api) {
        return Answer::Now(answer.unwrap_or_else(|e| {
            let (name, status) = e.name_and_status();
            http::error_response(status, name, e.message())
        }));
    }
    match (method, labels.as_slice()) {
        ("PUT", ["jobs", job_id]) => {
            let mut body = body;
            if let Err(message) = presign_document(&mut body, api) {
                return Answer::Now(invalid(&message));
            }
            let things = &*api.things;
            let create = CreateJobRequest::from_aws_body(job_id, &body, |arns| {
                things.resolve_targets(arns).map_err(|e| match e {
                    ThingsError::ResourceNotFound(m) => JobsError::ResourceNotFound(m),
                    other => JobsError::InvalidRequest(other.message().to_owned()),
                })
            });
            let create = match create {
                Ok(c) => c,
                Err(e) => return Answer::Now(jobs_error(e)),
            };
            let (cloud, id) = (api.cloud.clone(), job_id.to_string());
            later(api.sim, "serve: CreateJob", async move {
                match cloud.create_job(create).await {
                    Ok(()) => job_summary(&cloud, &id),
                    Err(e) => jobs_error(e),
                }
            })
        }
        ("PUT", ["jobs", job_id, "cancel"]) => {
            let force = request.param("force").as_deref() == Some("true");
            let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
            let (reason, comment) = (text("reasonCode"), text("comment"));
            let (cloud, id) = (api.cloud.clone(), job_id.to_string());
            later(api.sim, "serve: CancelJob", async move {
                let canceled = cloud.jobs().borrow_mut().cancel_job(
                    &id,
                    force,
                    reason.as_deref(),
                    comment.as_deref(),
                    cloud.now_s(),
                );
                match canceled {
                    Ok(out) => {
                        cloud.emit(out).await;
                        job_summary(&cloud, &id)
                    }
                    Err(e) => jobs_error(e),
                }
            })
        }
        ("GET", ["jobs"]) => {
            let status = match request.param("status") {
                None => None,
                Some(s) => match serde_json::from_value::<JobStatus>(json!(s)) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        return Answer::Now(invalid(&format!("status {s} is not a job status")));
                    }
                },
            };
            for unserved in ["thingGroupName", "thingGroupId", "namespaceId", "nextToken"] {
                if request.param(unserved).is_some() {
                    return Answer::Now(invalid(&format!("ListJobs by {unserved} is not served")));
                }
            }
            let jobs = api.cloud.jobs().borrow().list_jobs(status);
            Answer::Now(http::json_response(200, &json!({ "jobs": jobs })))
        }
        ("GET", ["jobs", job_id]) => {
            Answer::Now(match api.cloud.jobs().borrow().describe_job(job_id) {
                Ok(job) => http::json_response(200, &json!({ "job": job })),
                Err(e) => jobs_error(e),
            })
        }
        ("GET", ["jobs", job_id, "things"]) => {
            let status = match request.param("status") {
                None => None,
                Some(s) => match serde_json::from_value(json!(s)) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        return Answer::Now(invalid(&format!(
                            "status {s} is not a job execution status"
                        )));
                    }
                },
            };
            let listed = api
                .cloud
                .jobs()
                .borrow()
                .list_job_executions_for_job(job_id, status);
            Answer::Now(match listed {
                Ok(list) => http::json_response(200, &json!({ "executionSummaries": list })),
                Err(e) => jobs_error(e),
            })
        }
        ("GET", ["things", thing, "jobs", job_id]) => {
            let described = api.cloud.jobs().borrow().describe_job_execution(
                job_id,
                thing,
                None,
                api.cloud.now_s(),
            );
            Answer::Now(match described {
                Ok(execution) => http::json_response(200, &json!({ "execution": execution })),
                Err(e) => jobs_error(e),
            })
        }
        ("GET", ["endpoint"]) => Answer::Now(http::json_response(
            200,
            &json!({"endpointAddress": api.endpoint_address}),
        )),
        ("GET", ["event-configurations"]) => {
            let jobs = api.cloud.jobs().borrow().job_execution_events();
            let configurations: serde_json::Map<String, Value> = EVENT_TYPES
                .iter()
                .map(|t| {
                    let on = *t == JOB_EXECUTION && jobs;
                    ((*t).to_owned(), json!({ "Enabled": on }))
                })
                .collect();
            Answer::Now(http::json_response(
                200,
                &json!({ "eventConfigurations": configurations }),
            ))
        }
        ("PATCH", ["event-configurations"]) => Answer::Now(match event_configurations(&body) {
            Ok(Some(on)) => {
                api.cloud.jobs().borrow_mut().set_job_execution_events(on);
                http::json_response(200, &json!({}))
            }
            Ok(None) => http::json_response(200, &json!({})),
            Err(message) => invalid(&message),
        }),
        _ => Answer::Now(http::error_response(
            404,
            "ResourceNotFoundException",
            &format!("no iot operation at {} {}", request.method, request.path),
        )),
    }
}

/// The thing registry's operations; None when the request is not one.
fn registry(
    method: &str,
    labels: &[&str],
    request: &Request,
    body: &Value,
    api: &mut Api<'_>,
) -> Option<Result<Vec<u8>, ThingsError>> {
    let things = &mut *api.things;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let max_results = match request.param("maxResults").map(|m| m.parse::<usize>()) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(_)) => {
            return Some(Err(ThingsError::InvalidRequest(
                "maxResults must be a number".into(),
            )));
        }
    };
    let token = request.param("nextToken");
    let token = token.as_deref();
    let ok = |v: Value| Ok(http::json_response(200, &v));
    let with_token = |mut v: Value, next: Option<String>| {
        if let Some(t) = next {
            v["nextToken"] = json!(t);
        }
        Ok(http::json_response(200, &v))
    };
    Some(match (method, labels) {
        ("POST", ["things", name]) => {
            let attributes: BTreeMap<String, String> = match body
                .pointer("/attributePayload/attributes")
                .map(|a| serde_json::from_value(a.clone()))
            {
                None => BTreeMap::new(),
                Some(Ok(a)) => a,
                Some(Err(_)) => {
                    return Some(Err(ThingsError::InvalidRequest(
                        "attributePayload.attributes must map names to strings".into(),
                    )));
                }
            };
            let thing_type = text(body, "thingTypeName");
            things
                .create_thing(name, thing_type.as_deref(), attributes)
                .and_then(|t| {
                    ok(json!({
                        "thingName": t.thing_name,
                        "thingArn": t.thing_arn,
                        "thingId": t.thing_id,
                    }))
                })
        }
        ("GET", ["things", name]) => things.describe_thing(name).and_then(|t| ok(json!(t))),
        ("GET", ["things"]) => {
            let attribute_name = request.param("attributeName");
            let attribute_value = request.param("attributeValue");
            let attribute = attribute_name
                .as_deref()
                .map(|n| (n, attribute_value.as_deref()));
            let thing_type = request.param("thingTypeName");
            things
                .list_things(attribute, thing_type.as_deref(), token, max_results)
                .and_then(|p: Page<_>| {
                    let listed: Vec<Value> = p
                        .items
                        .iter()
                        .map(|t| {
                            json!({
                                "thingName": t.thing_name,
                                "thingTypeName": t.thing_type_name,
                                "thingArn": t.thing_arn,
                                "attributes": t.attributes,
                                "version": t.version,
                            })
                        })
                        .collect();
                    with_token(json!({ "things": listed }), p.next_token)
                })
        }
        ("POST", ["thing-types", name]) => things.create_thing_type(name).and_then(|(arn, id)| {
            ok(json!({"thingTypeName": name, "thingTypeArn": arn, "thingTypeId": id}))
        }),
        ("GET", ["thing-types"]) => things.list_thing_types(token, max_results).and_then(|p| {
            let listed: Vec<Value> = p
                .items
                .iter()
                .map(|(name, arn)| {
                    json!({
                        "thingTypeName": name,
                        "thingTypeArn": arn,
                        "thingTypeProperties": {},
                        "thingTypeMetadata": {"deprecated": false},
                    })
                })
                .collect();
            with_token(json!({ "thingTypes": listed }), p.next_token)
        }),
        ("PUT", ["thing-groups", "addThingToThingGroup"]) => {
            let group = text(body, "thingGroupName").or_else(|| text(body, "thingGroupArn"));
            let thing = text(body, "thingName").or_else(|| text(body, "thingArn"));
            match (group, thing) {
                (Some(g), Some(t)) => things
                    .add_thing_to_thing_group(&g, &t)
                    .and_then(|()| ok(json!({}))),
                _ => Err(ThingsError::InvalidRequest(
                    "a thing group (name or ARN) and a thing (name or ARN) are required".into(),
                )),
            }
        }
        ("POST", ["thing-groups", name]) => {
            let parent = text(body, "parentGroupName");
            let description = body
                .pointer("/thingGroupProperties/thingGroupDescription")
                .and_then(Value::as_str);
            things
                .create_thing_group(name, parent.as_deref(), description)
                .and_then(|g| {
                    ok(json!({
                        "thingGroupName": g.thing_group_name,
                        "thingGroupArn": g.thing_group_arn,
                        "thingGroupId": g.thing_group_id,
                    }))
                })
        }
        ("GET", ["thing-groups"]) => {
            let parent = request.param("parentGroup");
            let prefix = request.param("namePrefixFilter");
            things
                .list_thing_groups(parent.as_deref(), prefix.as_deref(), token, max_results)
                .and_then(|p| {
                    let listed: Vec<Value> = p
                        .items
                        .iter()
                        .map(|g| json!({"groupName": g.thing_group_name, "groupArn": g.thing_group_arn}))
                        .collect();
                    with_token(json!({ "thingGroups": listed }), p.next_token)
                })
        }
        ("GET", ["thing-groups", name, "things"]) => {
            let recursive = request.param("recursive").as_deref() == Some("true");
            things
                .list_things_in_thing_group(name, recursive, token, max_results)
                .and_then(|p| with_token(json!({ "things": p.items }), p.next_token))
        }
        _ => return None,
    })
}

/// Replaces the presigned-URL placeholders in CreateJob's document, valid
/// for `presignedUrlConfig.expiresInSec` (AWS: 60-3600, default 3600).
fn presign_document(body: &mut Value, api: &Api<'_>) -> Result<(), String> {
    let expires_s = match body.pointer("/presignedUrlConfig/expiresInSec") {
        None => 3600,
        Some(v) => match v.as_u64() {
            Some(s) if (60..=3600).contains(&s) => s,
            _ => {
                return Err(format!(
                    "presignedUrlConfig.expiresInSec must be 60-3600, not {v}"
                ));
            }
        },
    };
    if let Some(Value::String(document)) = body.get("document") {
        let presigned = super::objects::presign_placeholders(document, api, expires_s)?;
        body["document"] = Value::String(presigned);
    }
    Ok(())
}

/// AWS IoT's event types (model:iot `EventType`).
const EVENT_TYPES: [&str; 11] = [
    "THING",
    "THING_GROUP",
    "THING_TYPE",
    "THING_GROUP_MEMBERSHIP",
    "THING_GROUP_HIERARCHY",
    "THING_TYPE_ASSOCIATION",
    "JOB",
    "JOB_EXECUTION",
    "POLICY",
    "CERTIFICATE",
    "CA_CERTIFICATE",
];
const JOB_EXECUTION: &str = "JOB_EXECUTION";

/// UpdateEventConfigurations' body: the new JOB_EXECUTION setting, if it
/// names one. Enabling another type is refused (only job execution events
/// are published here), not accepted and then silently not honoured.
fn event_configurations(body: &Value) -> Result<Option<bool>, String> {
    let Some(configurations) = body.get("eventConfigurations").and_then(Value::as_object) else {
        return Err("eventConfigurations must be an object of event types".into());
    };
    let mut job_execution = None;
    for (event_type, configuration) in configurations {
        if !EVENT_TYPES.contains(&event_type.as_str()) {
            return Err(format!("unknown event type {event_type}"));
        }
        let enabled = match configuration.get("Enabled") {
            None => continue,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "{event_type}.Enabled must be a boolean, not {other}"
                ));
            }
        };
        if event_type == JOB_EXECUTION {
            job_execution = Some(enabled);
        } else if enabled {
            return Err(format!(
                "twinrig publishes JOB_EXECUTION events only; {event_type} cannot be enabled"
            ));
        }
    }
    Ok(job_execution)
}

fn invalid(message: &str) -> Vec<u8> {
    http::error_response(400, "InvalidRequestException", message)
}

/// CreateJob's and CancelJob's answer: the job's ARN, id and description.
fn job_summary(cloud: &crate::cloud_twin::CloudTwin, job_id: &str) -> Vec<u8> {
    match cloud.jobs().borrow().describe_job(job_id) {
        Ok(job) => http::json_response(
            200,
            &json!({
                "jobArn": job.job_arn,
                "jobId": job.job_id,
                "description": job.description
            }),
        ),
        Err(e) => jobs_error(e),
    }
}

/// A jobs error as AWS's control plane answers it.
fn jobs_error(e: JobsError) -> Vec<u8> {
    let status = match e {
        JobsError::ResourceNotFound(_) => 404,
        JobsError::ResourceAlreadyExists(_) | JobsError::InvalidStateTransition(_) => 409,
        JobsError::InvalidRequest(_) => 400,
    };
    let text = e.to_string();
    let message = text.split_once(": ").map_or(text.as_str(), |(_, m)| m);
    http::error_response(status, e.name(), message)
}
