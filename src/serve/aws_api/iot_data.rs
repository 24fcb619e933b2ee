//! The iot-data plane: GetThingShadow, UpdateThingShadow (classic and named)
//! and Publish, on AWS's REST paths, answered by the cloud twin's services.

use serde_json::json;
use twinrig_hal::{MqttClient as _, QoS};

use super::{Answer, Api, later};
use crate::serve::http::{self, Request};

/// Answers one iot-data request.
pub(super) fn answer(request: &Request, api: &mut Api<'_>) -> Answer {
    let labels = request.labels();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let name = request.param("name");
    match (request.method.as_str(), labels.as_slice()) {
        ("GET", ["things", thing, "shadow"]) => {
            let document = api.cloud.shadows().document(thing, name.as_deref());
            Answer::Now(match document {
                Some(doc) => http::json_response(200, &doc),
                None => http::error_response(
                    404,
                    "ResourceNotFoundException",
                    &twinrig_cloud::shadow::messages::no_shadow(thing, name.as_deref()),
                ),
            })
        }
        ("POST", ["things", thing, "shadow"]) => {
            let (thing, body, cloud) = (thing.to_string(), request.body.clone(), api.cloud.clone());
            later(api.sim, "serve: UpdateThingShadow", async move {
                match cloud
                    .update_shadow_http(&thing, name.as_deref(), &body)
                    .await
                {
                    Ok(doc) => http::json_response(200, &doc),
                    Err(e) => {
                        let code = match e.code {
                            404 => "ResourceNotFoundException",
                            409 => "ConflictException",
                            413 => "RequestEntityTooLargeException",
                            415 => "UnsupportedDocumentEncodingException",
                            _ => "InvalidRequestException",
                        };
                        http::error_response(e.code, code, &e.message)
                    }
                }
            })
        }
        ("POST", ["topics", topic]) => {
            let qos = match request.param("qos").as_deref() {
                None | Some("0") => QoS::AtMostOnce,
                Some("1") => QoS::AtLeastOnce,
                Some(q) => {
                    return Answer::Now(http::error_response(
                        400,
                        "InvalidRequestException",
                        &format!("qos must be 0 or 1, not {q}"),
                    ));
                }
            };
            if twinrig_hal::mqtt::validate_publish_topic(topic).is_err() {
                return Answer::Now(http::error_response(
                    400,
                    "InvalidRequestException",
                    &format!("`{topic}` is not a topic to publish to"),
                ));
            }
            let (client, topic, body) = (
                api.publisher.clone(),
                topic.to_string(),
                request.body.clone(),
            );
            api.sim.spawn("serve: Publish", async move {
                let _ = client.publish(&topic, &body, qos).await;
            });
            Answer::Now(http::json_response(200, &json!({})))
        }
        _ => Answer::Now(http::error_response(
            404,
            "ResourceNotFoundException",
            &format!(
                "no iot-data operation at {} {}",
                request.method, request.path
            ),
        )),
    }
}
