//! The real model behind the agent loop: Amazon Bedrock's Converse API
//! (cargo feature `bedrock`).
//!
//! [`BedrockModel`] implements [`Model`] the way the real edge agent uses
//! Bedrock: model `us.amazon.nova-2-lite-v1:0` in `us-east-1` by default, one
//! tool (`fingerspell`, input `{"text": string}`) in `toolConfig`, and the
//! conversation's system prompt ([`crate::agent::SYSTEM_PROMPT`]: pass the
//! user's text verbatim to `fingerspell`). Credentials come from the SDK's
//! default chain (environment, profile, SSO, instance role).
//!
//! Mapping, ours -> Bedrock ([`to_bedrock_messages`]):
//! - [`Message::User`] -> a `user` message with one text block;
//! - [`Message::Assistant`] -> an `assistant` message: its text (if not empty)
//!   then one `toolUse` block per call (id, name, input JSON);
//! - [`Message::ToolResults`] -> a `user` message with one `toolResult` block
//!   per result (id, text content, status `error` or `success`).
//!
//! Converse wants roles to alternate, so consecutive messages of one role are
//! merged into one (the agent loop never produces them; a caller might).
//! Empty text blocks are left out (Bedrock rejects blank text).
//!
//! Bedrock -> ours ([`from_converse_output`]): text blocks joined with `\n`,
//! `toolUse` blocks as [`ToolCall`]s in order, usage input/output/total tokens
//! (missing usage counts 0), and the stop reason as [`ConverseStop`]. Other
//! block kinds (reasoning, citations, images...) are ignored: the agent only
//! acts on text and tool calls. [`turn_or_error`] then refuses the turns the
//! loop must not act on: `max_tokens` (a tool call may be cut off),
//! `malformed_model_output`, `malformed_tool_use`, the context window
//! exceeded, and `tool_use` with no tool call; a guardrail or content filter
//! stop ends the invocation like `end_turn`, with whatever text came back.
//!
//! The [`Model`] trait is synchronous (the agent runs on one blocking worker
//! thread, like the servo driver under it), and the SDK is async, so the
//! adapter owns a tokio *current-thread* runtime and blocks on each call: no
//! extra threads, and the agent stays one thread that owns the robot. It must
//! therefore not be called from inside another tokio runtime (that is
//! reported as a [`ModelError`], not a panic).
//!
//! This adapter talks to AWS over the network and reads the wall clock (SigV4
//! signing); scenario runs use the deterministic
//! [`OfflineModel`](crate::agent::OfflineModel) instead.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::Region;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::error::DisplayErrorContext;
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{
    self as bedrock, ContentBlock, ConversationRole, StopReason, SystemContentBlock, Tool,
    ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolResultStatus,
    ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use crate::agent::{
    Conversation, FINGERSPELL_TOOL, Message, Model, ModelError, ModelTurn, TokenUsage, ToolCall,
};

/// The model the real agent uses (Amazon Nova 2 Lite, US cross-region profile).
pub const DEFAULT_MODEL_ID: &str = "us.amazon.nova-2-lite-v1:0";
/// The region the real system runs in.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The `fingerspell` tool's description, as the model reads it.
pub const FINGERSPELL_DESCRIPTION: &str = "Fingerspell text in American Sign Language on the \
robotic hand, one letter at a time (letters A-Z; spaces pause). Pass the user's message \
verbatim as `text`.";

/// The `fingerspell` tool's input JSON schema: `{text: string}`.
pub fn fingerspell_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "text": {
                "type": "string",
                "description": "The user's message, exactly as written."
            }
        },
        "required": ["text"]
    })
}

/// Where and how to call Bedrock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockConfig {
    /// Model or inference-profile id. Default [`DEFAULT_MODEL_ID`].
    pub model_id: String,
    /// AWS region. Default [`DEFAULT_REGION`].
    pub region: String,
    /// Limit on one Converse call, retries included. Default 60 s (assumed:
    /// long enough for a short tool-calling turn, short enough that a dead
    /// network does not hang the worker).
    pub operation_timeout: Duration,
}

impl Default for BedrockConfig {
    fn default() -> Self {
        BedrockConfig {
            model_id: DEFAULT_MODEL_ID.into(),
            region: DEFAULT_REGION.into(),
            operation_timeout: Duration::from_secs(60),
        }
    }
}

/// Bedrock's stop reason, as ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConverseStop {
    /// The model finished its turn.
    EndTurn,
    /// The model wants tool results.
    ToolUse,
    /// The output hit the token limit.
    MaxTokens,
    /// A stop sequence was produced.
    StopSequence,
    /// A guardrail stepped in.
    GuardrailIntervened,
    /// The content filter stepped in.
    ContentFiltered,
    /// The conversation no longer fits the model.
    ContextWindowExceeded,
    /// The model's output could not be parsed.
    MalformedModelOutput,
    /// The model's tool call could not be parsed.
    MalformedToolUse,
    /// A reason this SDK version does not know.
    Other(String),
}

impl From<&StopReason> for ConverseStop {
    fn from(r: &StopReason) -> Self {
        match r {
            StopReason::EndTurn => ConverseStop::EndTurn,
            StopReason::ToolUse => ConverseStop::ToolUse,
            StopReason::MaxTokens => ConverseStop::MaxTokens,
            StopReason::StopSequence => ConverseStop::StopSequence,
            StopReason::GuardrailIntervened => ConverseStop::GuardrailIntervened,
            StopReason::ContentFiltered => ConverseStop::ContentFiltered,
            StopReason::ModelContextWindowExceeded => ConverseStop::ContextWindowExceeded,
            StopReason::MalformedModelOutput => ConverseStop::MalformedModelOutput,
            StopReason::MalformedToolUse => ConverseStop::MalformedToolUse,
            other => ConverseStop::Other(other.as_str().to_string()),
        }
    }
}

/// One Converse response, mapped: the turn plus why the model stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockTurn {
    /// Text, tool calls and usage.
    pub turn: ModelTurn,
    /// Bedrock's stop reason.
    pub stop: ConverseStop,
}

/// JSON -> the SDK's document type.
pub fn json_to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            // serde_json numbers are u64, i64 or finite f64.
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(json_to_document).collect()),
        Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// The SDK's document type -> JSON. Object keys come out sorted (serde_json's
/// map), whatever the order of the document's `HashMap`. A non-finite float
/// (JSON cannot carry one, so Bedrock cannot send one) becomes `null`.
pub fn document_to_json(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(document_to_json).collect()),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), document_to_json(v)))
                .collect(),
        ),
    }
}

fn build_error(what: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError(format!("building the Bedrock {what}: {e}"))
}

/// The system prompt as Bedrock system blocks (none when it is blank).
pub fn system_blocks(conversation: &Conversation) -> Vec<SystemContentBlock> {
    if conversation.system.trim().is_empty() {
        Vec::new()
    } else {
        vec![SystemContentBlock::Text(conversation.system.clone())]
    }
}

/// The `toolConfig`: the one `fingerspell` tool.
pub fn tool_config() -> Result<ToolConfiguration, ModelError> {
    let spec = ToolSpecification::builder()
        .name(FINGERSPELL_TOOL)
        .description(FINGERSPELL_DESCRIPTION)
        .input_schema(ToolInputSchema::Json(json_to_document(
            &fingerspell_schema(),
        )))
        .build()
        .map_err(|e| build_error("tool spec", e))?;
    ToolConfiguration::builder()
        .tools(Tool::ToolSpec(spec))
        .build()
        .map_err(|e| build_error("tool config", e))
}

/// Our conversation as Bedrock messages (see the module docs for the mapping).
pub fn to_bedrock_messages(
    conversation: &Conversation,
) -> Result<Vec<bedrock::Message>, ModelError> {
    // (role, blocks) first, merging runs of one role; then build.
    let mut runs: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();
    for (i, m) in conversation.messages.iter().enumerate() {
        let (role, blocks) = match m {
            Message::User(text) => (
                ConversationRole::User,
                non_blank(text)
                    .map(ContentBlock::Text)
                    .into_iter()
                    .collect(),
            ),
            Message::Assistant { text, tool_calls } => {
                let mut blocks: Vec<ContentBlock> = text
                    .as_deref()
                    .and_then(non_blank)
                    .map(ContentBlock::Text)
                    .into_iter()
                    .collect();
                for call in tool_calls {
                    let block = ToolUseBlock::builder()
                        .tool_use_id(&call.id)
                        .name(&call.name)
                        .input(json_to_document(&call.input))
                        .build()
                        .map_err(|e| build_error("toolUse block", e))?;
                    blocks.push(ContentBlock::ToolUse(block));
                }
                (ConversationRole::Assistant, blocks)
            }
            Message::ToolResults(results) => {
                let mut blocks = Vec::new();
                for r in results {
                    let block = ToolResultBlock::builder()
                        .tool_use_id(&r.id)
                        .content(ToolResultContentBlock::Text(r.content.clone()))
                        .status(if r.is_error {
                            ToolResultStatus::Error
                        } else {
                            ToolResultStatus::Success
                        })
                        .build()
                        .map_err(|e| build_error("toolResult block", e))?;
                    blocks.push(ContentBlock::ToolResult(block));
                }
                (ConversationRole::User, blocks)
            }
        };
        if blocks.is_empty() {
            return Err(ModelError(format!(
                "message {i} has no content to send to Bedrock (blank text, no tool calls or results)"
            )));
        }
        match runs.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => runs.push((role, blocks)),
        }
    }
    if runs
        .first()
        .is_none_or(|(r, _)| *r != ConversationRole::User)
    {
        return Err(ModelError(
            "a Bedrock conversation must start with a user message".into(),
        ));
    }
    runs.into_iter()
        .map(|(role, blocks)| {
            bedrock::Message::builder()
                .role(role)
                .set_content(Some(blocks))
                .build()
                .map_err(|e| build_error("message", e))
        })
        .collect()
}

fn non_blank(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

/// A Converse response as our turn and stop reason.
pub fn from_converse_output(out: &ConverseOutput) -> Result<BedrockTurn, ModelError> {
    let message = match out.output() {
        Some(bedrock::ConverseOutput::Message(m)) => m,
        Some(other) => {
            return Err(ModelError(format!(
                "Bedrock returned an output this adapter does not know: {other:?}"
            )));
        }
        None => return Err(ModelError("Bedrock returned no output message".into())),
    };
    if message.role() != &ConversationRole::Assistant {
        return Err(ModelError(format!(
            "Bedrock output has role {:?}, expected assistant",
            message.role().as_str()
        )));
    }
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in message.content() {
        match block {
            ContentBlock::Text(t) => texts.push(t.as_str()),
            ContentBlock::ToolUse(u) => tool_calls.push(ToolCall {
                id: u.tool_use_id().to_string(),
                name: u.name().to_string(),
                input: document_to_json(u.input()),
            }),
            // Reasoning, citations, media: nothing the agent acts on.
            _ => {}
        }
    }
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    let usage = out.usage().map_or(TokenUsage::default(), |u| TokenUsage {
        input: count(u.input_tokens()),
        output: count(u.output_tokens()),
        total: count(u.total_tokens()),
    });
    Ok(BedrockTurn {
        turn: ModelTurn {
            text: (!texts.is_empty()).then(|| texts.join("\n")),
            tool_calls,
            usage,
        },
        stop: ConverseStop::from(out.stop_reason()),
    })
}

/// The turn the agent loop may act on, or why it may not (see the module docs).
pub fn turn_or_error(t: BedrockTurn) -> Result<ModelTurn, ModelError> {
    let refuse = |why: &str| Err(ModelError(format!("Bedrock stopped: {why}")));
    match t.stop {
        ConverseStop::MaxTokens => refuse("max_tokens (the output was cut off)"),
        ConverseStop::ContextWindowExceeded => refuse("model_context_window_exceeded"),
        ConverseStop::MalformedModelOutput => refuse("malformed_model_output"),
        ConverseStop::MalformedToolUse => refuse("malformed_tool_use"),
        ConverseStop::ToolUse if t.turn.tool_calls.is_empty() => {
            refuse("tool_use without any toolUse block")
        }
        _ => Ok(t.turn),
    }
}

/// [`Model`] over Bedrock Converse. Construct once, use for many messages
/// (each `respond` is one Converse call).
pub struct BedrockModel {
    runtime: tokio::runtime::Runtime,
    client: Client,
    model_id: String,
    last_stop: Option<ConverseStop>,
}

impl std::fmt::Debug for BedrockModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BedrockModel")
            .field("model_id", &self.model_id)
            .field("last_stop", &self.last_stop)
            .finish_non_exhaustive()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ModelError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(ModelError(
            "BedrockModel blocks on its own runtime and cannot run inside another tokio \
             runtime; run the agent on a thread of its own"
                .into(),
        ));
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ModelError(format!("starting the tokio runtime: {e}")))
}

impl BedrockModel {
    /// A model using the SDK's default credential chain in `config.region`.
    /// Loads configuration only; nothing goes over the network until
    /// [`Model::respond`].
    pub fn new(config: &BedrockConfig) -> Result<BedrockModel, ModelError> {
        if config.model_id.trim().is_empty() {
            return Err(ModelError("empty Bedrock model id".into()));
        }
        if config.region.trim().is_empty() {
            return Err(ModelError("empty AWS region".into()));
        }
        let runtime = runtime()?;
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(config.operation_timeout)
            .build();
        let sdk = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(Region::new(config.region.clone()))
                .timeout_config(timeouts)
                .load(),
        );
        Ok(BedrockModel {
            client: Client::new(&sdk),
            runtime,
            model_id: config.model_id.clone(),
            last_stop: None,
        })
    }

    /// A model over a client configured by the caller (endpoint, credentials,
    /// retries of its own).
    pub fn with_client(client: Client, model_id: &str) -> Result<BedrockModel, ModelError> {
        if model_id.trim().is_empty() {
            return Err(ModelError("empty Bedrock model id".into()));
        }
        Ok(BedrockModel {
            runtime: runtime()?,
            client,
            model_id: model_id.to_string(),
            last_stop: None,
        })
    }

    /// The model id it calls.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Why the last successful Converse call stopped.
    pub fn last_stop(&self) -> Option<&ConverseStop> {
        self.last_stop.as_ref()
    }
}

impl Model for BedrockModel {
    fn respond(&mut self, conversation: &Conversation) -> Result<ModelTurn, ModelError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // `block_on` inside a runtime would panic; say so instead.
            return Err(ModelError(
                "BedrockModel::respond called from inside a tokio runtime".into(),
            ));
        }
        let request = self
            .client
            .converse()
            .model_id(&self.model_id)
            .set_system(Some(system_blocks(conversation)).filter(|s| !s.is_empty()))
            .set_messages(Some(to_bedrock_messages(conversation)?))
            .tool_config(tool_config()?);
        let out = self
            .runtime
            .block_on(request.send())
            .map_err(|e| ModelError(format!("Bedrock Converse: {}", DisplayErrorContext(&e))))?;
        let turn = from_converse_output(&out)?;
        self.last_stop = Some(turn.stop.clone());
        turn_or_error(turn)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_bedrockruntime::config::http::{HttpRequest, HttpResponse};
    use aws_sdk_bedrockruntime::config::{Credentials, SharedHttpClient};
    use aws_sdk_bedrockruntime::types::TokenUsage as BedrockUsage;
    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
    };
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use serde_json::json;

    use super::*;
    use crate::agent::{SYSTEM_PROMPT, ToolResult};

    fn sample_conversation() -> Conversation {
        let mut c = Conversation::fresh("Hi Bob");
        c.messages.push(Message::Assistant {
            text: Some("Spelling it.".into()),
            tool_calls: vec![
                ToolCall {
                    id: "t1".into(),
                    name: FINGERSPELL_TOOL.into(),
                    input: json!({"text": "Hi Bob"}),
                },
                ToolCall {
                    id: "t2".into(),
                    name: FINGERSPELL_TOOL.into(),
                    input: json!({"text": "again", "n": -3, "f": 0.5, "l": [true, null]}),
                },
            ],
        });
        c.messages.push(Message::ToolResults(vec![
            ToolResult {
                id: "t1".into(),
                content: r#"{"spelled":"HIBOB"}"#.into(),
                is_error: false,
            },
            ToolResult {
                id: "t2".into(),
                content: "cancelled".into(),
                is_error: true,
            },
        ]));
        c
    }

    #[test]
    fn conversation_maps_to_alternating_bedrock_messages() {
        let msgs = to_bedrock_messages(&sample_conversation()).unwrap();
        let roles: Vec<&str> = msgs.iter().map(|m| m.role().as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(msgs[0].content(), [ContentBlock::Text("Hi Bob".into())]);
        let a = msgs[1].content();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0], ContentBlock::Text("Spelling it.".into()));
        let ContentBlock::ToolUse(u) = &a[2] else {
            panic!("{:?}", a[2])
        };
        assert_eq!((u.tool_use_id(), u.name()), ("t2", "fingerspell"));
        assert_eq!(
            document_to_json(u.input()),
            json!({"text": "again", "n": -3, "f": 0.5, "l": [true, null]})
        );
        assert!(matches!(
            u.input(),
            Document::Object(o) if o.get("n") == Some(&Document::Number(Number::NegInt(-3)))
        ));
        let results: Vec<(&str, &str, &str)> = msgs[2]
            .content()
            .iter()
            .map(|b| {
                let ContentBlock::ToolResult(r) = b else {
                    panic!("{b:?}")
                };
                let [ToolResultContentBlock::Text(t)] = r.content() else {
                    panic!("{r:?}")
                };
                (
                    r.tool_use_id(),
                    t.as_str(),
                    r.status().map_or("", |s| s.as_str()),
                )
            })
            .collect();
        assert_eq!(
            results,
            [
                ("t1", r#"{"spelled":"HIBOB"}"#, "success"),
                ("t2", "cancelled", "error")
            ]
        );
        assert_eq!(
            system_blocks(&sample_conversation()),
            [SystemContentBlock::Text(SYSTEM_PROMPT.into())]
        );
    }

    #[test]
    fn same_role_runs_merge_and_blank_text_is_dropped() {
        let c = Conversation {
            system: "  ".into(),
            messages: vec![
                Message::User("a".into()),
                Message::User("b".into()),
                Message::Assistant {
                    text: Some(String::new()),
                    tool_calls: vec![ToolCall {
                        id: "x".into(),
                        name: FINGERSPELL_TOOL.into(),
                        input: json!({"text": "ab"}),
                    }],
                },
            ],
        };
        assert!(system_blocks(&c).is_empty());
        let msgs = to_bedrock_messages(&c).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0].content(),
            [
                ContentBlock::Text("a".into()),
                ContentBlock::Text("b".into())
            ]
        );
        assert_eq!(msgs[1].content().len(), 1, "no blank text block");
    }

    #[test]
    fn unsendable_conversations_are_errors() {
        for messages in [
            vec![],
            vec![Message::User("  ".into())],
            vec![Message::Assistant {
                text: Some("hi".into()),
                tool_calls: vec![],
            }],
            vec![
                Message::User("a".into()),
                Message::Assistant {
                    text: None,
                    tool_calls: vec![],
                },
            ],
            vec![Message::User("a".into()), Message::ToolResults(vec![])],
        ] {
            let c = Conversation {
                system: SYSTEM_PROMPT.into(),
                messages: messages.clone(),
            };
            assert!(to_bedrock_messages(&c).is_err(), "{messages:?}");
        }
    }

    #[test]
    fn tool_config_describes_fingerspell() {
        let cfg = tool_config().unwrap();
        let [Tool::ToolSpec(spec)] = cfg.tools() else {
            panic!("{cfg:?}")
        };
        assert_eq!(spec.name(), "fingerspell");
        assert!(spec.description().unwrap().contains("verbatim"));
        let Some(ToolInputSchema::Json(schema)) = spec.input_schema() else {
            panic!("{spec:?}")
        };
        assert_eq!(document_to_json(schema), fingerspell_schema());
        assert_eq!(
            fingerspell_schema()["properties"]["text"]["type"],
            json!("string")
        );
        assert_eq!(fingerspell_schema()["required"], json!(["text"]));
    }

    fn output(
        blocks: Vec<ContentBlock>,
        stop: StopReason,
        usage: Option<(i32, i32, i32)>,
    ) -> ConverseOutput {
        let message = bedrock::Message::builder()
            .role(ConversationRole::Assistant)
            .set_content(Some(blocks))
            .build()
            .unwrap();
        let mut b = ConverseOutput::builder()
            .output(bedrock::ConverseOutput::Message(message))
            .stop_reason(stop);
        if let Some((i, o, t)) = usage {
            b = b.usage(
                BedrockUsage::builder()
                    .input_tokens(i)
                    .output_tokens(o)
                    .total_tokens(t)
                    .build()
                    .unwrap(),
            );
        }
        b.build().unwrap()
    }

    fn tool_use(id: &str, input: Value) -> ContentBlock {
        ContentBlock::ToolUse(
            ToolUseBlock::builder()
                .tool_use_id(id)
                .name(FINGERSPELL_TOOL)
                .input(json_to_document(&input))
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn converse_output_maps_to_our_turn() {
        let out = output(
            vec![
                ContentBlock::Text("Sure.".into()),
                tool_use("tooluse_1", json!({"text": "Hello, World!"})),
                ContentBlock::Text("Done soon.".into()),
                tool_use("tooluse_2", json!({"text": "x"})),
            ],
            StopReason::ToolUse,
            Some((412, 37, 449)),
        );
        let t = from_converse_output(&out).unwrap();
        assert_eq!(t.stop, ConverseStop::ToolUse);
        assert_eq!(t.turn.text.as_deref(), Some("Sure.\nDone soon."));
        assert_eq!(
            t.turn.tool_calls,
            [
                ToolCall {
                    id: "tooluse_1".into(),
                    name: "fingerspell".into(),
                    input: json!({"text": "Hello, World!"}),
                },
                ToolCall {
                    id: "tooluse_2".into(),
                    name: "fingerspell".into(),
                    input: json!({"text": "x"}),
                }
            ]
        );
        assert_eq!(
            t.turn.usage,
            TokenUsage {
                input: 412,
                output: 37,
                total: 449
            }
        );
        assert_eq!(turn_or_error(t.clone()).unwrap(), t.turn);

        let end = from_converse_output(&output(
            vec![ContentBlock::Text("Done.".into())],
            StopReason::EndTurn,
            None,
        ))
        .unwrap();
        assert_eq!(end.stop, ConverseStop::EndTurn);
        assert!(end.turn.tool_calls.is_empty());
        assert_eq!(end.turn.usage, TokenUsage::default());
    }

    #[test]
    fn stop_reasons_the_loop_must_not_act_on_are_errors() {
        let call = || vec![tool_use("t", json!({"text": "a"}))];
        for (stop, blocks, ok) in [
            (StopReason::EndTurn, vec![], true),
            (StopReason::StopSequence, vec![], true),
            (
                StopReason::GuardrailIntervened,
                vec![ContentBlock::Text("no".into())],
                true,
            ),
            (StopReason::ContentFiltered, vec![], true),
            (StopReason::ToolUse, call(), true),
            (StopReason::ToolUse, vec![], false),
            (StopReason::MaxTokens, call(), false),
            (StopReason::ModelContextWindowExceeded, vec![], false),
            (StopReason::MalformedModelOutput, vec![], false),
            (StopReason::MalformedToolUse, vec![], false),
            (StopReason::from("brand_new_reason"), vec![], true),
        ] {
            let t = from_converse_output(&output(blocks, stop.clone(), None)).unwrap();
            assert_eq!(turn_or_error(t).is_ok(), ok, "{stop:?}");
        }
        assert_eq!(
            ConverseStop::from(&StopReason::from("brand_new_reason")),
            ConverseStop::Other("brand_new_reason".into())
        );
        let none = ConverseOutput::builder()
            .stop_reason(StopReason::EndTurn)
            .build()
            .unwrap();
        assert!(from_converse_output(&none).is_err());
    }

    #[test]
    fn documents_round_trip_json() {
        let v = json!({
            "s": "é", "u": 18446744073709551615u64, "i": -9223372036854775808i64,
            "f": 1.5, "b": false, "n": null, "a": [1, [2, {"z": 3, "a": 4}]]
        });
        assert_eq!(document_to_json(&json_to_document(&v)), v);
        assert_eq!(
            document_to_json(&Document::Number(Number::Float(f64::NAN))),
            Value::Null
        );
    }

    /// Answers every request with `body` and keeps the requests' bodies.
    #[derive(Debug, Clone)]
    struct Canned {
        body: &'static str,
        seen: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl HttpConnector for Canned {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let body = request.body().bytes().unwrap_or_default().to_vec();
            self.seen.lock().unwrap().push(body);
            let status = StatusCode::try_from(200).unwrap();
            HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from(self.body))))
        }
    }

    fn canned_model(body: &'static str) -> (BedrockModel, Arc<Mutex<Vec<Vec<u8>>>>) {
        let canned = Canned {
            body,
            seen: Arc::default(),
        };
        let seen = canned.seen.clone();
        let http: SharedHttpClient =
            http_client_fn(move |_, _| SharedHttpConnector::new(canned.clone()));
        let config = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
            .region(Region::new(DEFAULT_REGION))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .http_client(http)
            .build();
        let model = BedrockModel::with_client(Client::from_conf(config), DEFAULT_MODEL_ID).unwrap();
        (model, seen)
    }

    #[test]
    fn respond_sends_converse_json_and_maps_the_reply() {
        let (mut model, seen) = canned_model(
            r#"{"output":{"message":{"role":"assistant","content":[
                {"toolUse":{"toolUseId":"tooluse_9","name":"fingerspell","input":{"text":"Hi Bob"}}}]}},
              "stopReason":"tool_use",
              "usage":{"inputTokens":500,"outputTokens":20,"totalTokens":520},
              "metrics":{"latencyMs":321}}"#,
        );
        let turn = model.respond(&Conversation::fresh("Hi Bob")).unwrap();
        assert_eq!(model.last_stop(), Some(&ConverseStop::ToolUse));
        assert_eq!(turn.tool_calls.len(), 1);
        assert_eq!(turn.tool_calls[0].input, json!({"text": "Hi Bob"}));
        assert_eq!(turn.usage.total, 520);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let sent: Value = serde_json::from_slice(&seen[0]).unwrap();
        assert_eq!(
            sent["messages"],
            json!([{"role": "user", "content": [{"text": "Hi Bob"}]}])
        );
        assert_eq!(sent["system"], json!([{"text": SYSTEM_PROMPT}]));
        assert_eq!(
            sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
            json!("fingerspell")
        );
        assert_eq!(
            sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
            fingerspell_schema()
        );
        assert_eq!(model.model_id(), DEFAULT_MODEL_ID);
    }

    #[test]
    fn respond_turns_bad_replies_into_model_errors() {
        let (mut model, _) = canned_model(
            r#"{"stopReason":"max_tokens","output":{"message":{"role":"assistant","content":[{"text":"cut"}]}}}"#,
        );
        let err = model.respond(&Conversation::fresh("a")).unwrap_err();
        assert!(err.0.contains("max_tokens"), "{err}");
        assert_eq!(model.last_stop(), Some(&ConverseStop::MaxTokens));
        let (mut model, _) = canned_model("not json");
        assert!(model.respond(&Conversation::fresh("a")).is_err());
    }

    #[test]
    fn refuses_to_nest_in_another_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(async { BedrockModel::new(&BedrockConfig::default()) })
            .unwrap_err();
        assert!(err.0.contains("inside another tokio runtime"), "{err}");
        let (mut model, seen) = canned_model("{}");
        let err = rt
            .block_on(async { model.respond(&Conversation::fresh("a")) })
            .unwrap_err();
        assert!(err.0.contains("inside a tokio runtime"), "{err}");
        assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
        let empty = BedrockConfig {
            model_id: " ".into(),
            ..BedrockConfig::default()
        };
        assert!(BedrockModel::new(&empty).is_err());
        assert_eq!(
            BedrockConfig::default().model_id,
            "us.amazon.nova-2-lite-v1:0"
        );
        assert_eq!(BedrockConfig::default().region, "us-east-1");
    }
}
