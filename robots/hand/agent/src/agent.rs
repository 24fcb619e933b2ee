//! The agent loop: one fresh conversation per message, a [`Model`], one tool
//! (`fingerspell`), and a hard cap of 3 tool calls per invocation.
//!
//! Each message starts a new [`Conversation`] holding only the system prompt and
//! that message, so no history carries over and token use stays bounded. The
//! loop asks the model for a turn; tool calls in the turn run in order until 3
//! have run in this invocation, and every call beyond that is **cancelled**: not
//! executed, answered with an error tool result saying so, and listed in
//! [`AgentRun::cancelled`]. The model is then asked again (it sees the results),
//! until it answers without tool calls or the model-call cap (default 12, assumed
//! from the author's sibling agent) is reached.

use serde::{Deserialize, Serialize};

/// The only tool's name.
pub const FINGERSPELL_TOOL: &str = "fingerspell";

/// The system prompt given to the model.
pub const SYSTEM_PROMPT: &str = "You control a robotic hand that fingerspells American Sign Language. \
Call the fingerspell tool exactly once with the user's whole message, verbatim, as `text`. \
Do not rephrase, translate or split it.";

/// Token counts as the model reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Total as reported (input + output for the offline model).
    pub total: u64,
}

impl TokenUsage {
    /// Adds another turn's usage.
    pub fn add(&mut self, other: TokenUsage) {
        self.input += other.input;
        self.output += other.output;
        self.total += other.total;
    }
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Id the model gave the call (echoed in the result).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments; `fingerspell` takes `{"text": "..."}`.
    pub input: serde_json::Value,
}

/// A tool's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The call's id.
    pub id: String,
    /// Result text (JSON for `fingerspell`).
    pub content: String,
    /// True when the call failed or was cancelled.
    pub is_error: bool,
}

/// One message in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// The user's message (the action text).
    User(String),
    /// A model turn.
    Assistant {
        /// Text, if any.
        text: Option<String>,
        /// Tool calls, if any.
        tool_calls: Vec<ToolCall>,
    },
    /// Results of the previous turn's tool calls.
    ToolResults(Vec<ToolResult>),
}

/// What the model sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// System prompt.
    pub system: String,
    /// Messages, oldest first.
    pub messages: Vec<Message>,
}

impl Conversation {
    /// A fresh conversation with one user message.
    pub fn fresh(user_text: &str) -> Conversation {
        Conversation {
            system: SYSTEM_PROMPT.into(),
            messages: vec![Message::User(user_text.into())],
        }
    }
}

/// One model response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelTurn {
    /// Text, if any.
    pub text: Option<String>,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Usage of this turn.
    pub usage: TokenUsage,
}

/// A model call failed (network, throttling, bad response...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model: {0}")]
pub struct ModelError(pub String);

/// A language model (or a deterministic stand-in).
pub trait Model {
    /// One turn, given the whole conversation so far.
    fn respond(&mut self, conversation: &Conversation) -> Result<ModelTurn, ModelError>;
}

impl<M: Model + ?Sized> Model for &mut M {
    fn respond(&mut self, conversation: &Conversation) -> Result<ModelTurn, ModelError> {
        (**self).respond(conversation)
    }
}

impl<M: Model + ?Sized> Model for Box<M> {
    fn respond(&mut self, conversation: &Conversation) -> Result<ModelTurn, ModelError> {
        (**self).respond(conversation)
    }
}

/// The deterministic offline model: on a user message it calls `fingerspell` once
/// with the text verbatim; once it has tool results it answers with a short text
/// and no calls.
///
/// Token counts are its own, deterministic estimate: ceil(chars / 4) of everything
/// it reads (system prompt + all message text, tool inputs and results) as input,
/// and ceil(chars / 4) of what it writes (text + tool-call input JSON) as output;
/// total = input + output.
#[derive(Debug, Clone, Default)]
pub struct OfflineModel {
    calls: u64,
}

fn tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

fn conversation_chars(c: &Conversation) -> usize {
    let mut n = c.system.chars().count();
    for m in &c.messages {
        n += match m {
            Message::User(t) => t.chars().count(),
            Message::Assistant { text, tool_calls } => {
                text.as_deref().map_or(0, |t| t.chars().count())
                    + tool_calls
                        .iter()
                        .map(|t| t.name.len() + t.input.to_string().chars().count())
                        .sum::<usize>()
            }
            Message::ToolResults(rs) => rs.iter().map(|r| r.content.chars().count()).sum(),
        };
    }
    n
}

impl Model for OfflineModel {
    fn respond(&mut self, conversation: &Conversation) -> Result<ModelTurn, ModelError> {
        self.calls += 1;
        let input = tokens(conversation_chars(conversation));
        let turn = match conversation.messages.last() {
            Some(Message::User(text)) => {
                let call = ToolCall {
                    id: format!("offline-{}", self.calls),
                    name: FINGERSPELL_TOOL.into(),
                    input: serde_json::json!({ "text": text }),
                };
                let output =
                    tokens(FINGERSPELL_TOOL.len() + call.input.to_string().chars().count());
                ModelTurn {
                    text: None,
                    tool_calls: vec![call],
                    usage: TokenUsage {
                        input,
                        output,
                        total: input + output,
                    },
                }
            }
            _ => {
                let text = "Done.".to_string();
                let output = tokens(text.chars().count());
                ModelTurn {
                    text: Some(text),
                    tool_calls: Vec::new(),
                    usage: TokenUsage {
                        input,
                        output,
                        total: input + output,
                    },
                }
            }
        };
        Ok(turn)
    }
}

/// Caps of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentLimits {
    /// Tool calls executed per invocation; further calls are cancelled. Default 3.
    pub max_tool_calls: usize,
    /// Model turns per invocation. Default 12 (assumed).
    pub max_model_calls: usize,
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_tool_calls: 3,
            max_model_calls: 12,
        }
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The model answered without tool calls.
    EndTurn,
    /// The model-call cap was reached.
    ModelCallCap,
    /// The model failed.
    ModelError(String),
}

/// What one invocation did.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRun {
    /// The model's last text.
    pub final_text: Option<String>,
    /// Summed token usage.
    pub usage: TokenUsage,
    /// Model turns taken.
    pub model_calls: usize,
    /// Calls executed, with their results.
    pub executed: Vec<(ToolCall, ToolResult)>,
    /// Calls cancelled by the tool-call cap.
    pub cancelled: Vec<ToolCall>,
    /// Why it stopped.
    pub stop: StopReason,
    /// The final conversation.
    pub conversation: Conversation,
}

/// Runs one tool call.
pub trait Tools {
    /// Execute `call` and return its result.
    fn call(&mut self, call: &ToolCall) -> ToolResult;
}

/// Runs a fresh agent for one message.
pub fn run_agent(
    model: &mut dyn Model,
    text: &str,
    tools: &mut dyn Tools,
    limits: AgentLimits,
) -> AgentRun {
    let mut conversation = Conversation::fresh(text);
    let mut run = AgentRun {
        final_text: None,
        usage: TokenUsage::default(),
        model_calls: 0,
        executed: Vec::new(),
        cancelled: Vec::new(),
        stop: StopReason::ModelCallCap,
        conversation: Conversation::fresh(text),
    };
    while run.model_calls < limits.max_model_calls {
        run.model_calls += 1;
        let turn = match model.respond(&conversation) {
            Ok(turn) => turn,
            Err(e) => {
                run.stop = StopReason::ModelError(e.0);
                break;
            }
        };
        run.usage.add(turn.usage);
        if turn.text.is_some() {
            run.final_text = turn.text.clone();
        }
        conversation.messages.push(Message::Assistant {
            text: turn.text,
            tool_calls: turn.tool_calls.clone(),
        });
        if turn.tool_calls.is_empty() {
            run.stop = StopReason::EndTurn;
            break;
        }
        let mut results = Vec::new();
        for call in turn.tool_calls {
            if run.executed.len() < limits.max_tool_calls {
                let result = tools.call(&call);
                results.push(result.clone());
                run.executed.push((call, result));
            } else {
                results.push(ToolResult {
                    id: call.id.clone(),
                    content: format!(
                        "cancelled: the limit of {} tool calls per invocation was reached",
                        limits.max_tool_calls
                    ),
                    is_error: true,
                });
                run.cancelled.push(call);
            }
        }
        conversation.messages.push(Message::ToolResults(results));
    }
    run.conversation = conversation;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    struct CountingTools(usize);
    impl Tools for CountingTools {
        fn call(&mut self, call: &ToolCall) -> ToolResult {
            self.0 += 1;
            ToolResult {
                id: call.id.clone(),
                content: "ok".into(),
                is_error: false,
            }
        }
    }

    /// Calls `fingerspell` `per_turn` times every turn, forever.
    struct Runaway {
        per_turn: usize,
        n: usize,
    }
    impl Model for Runaway {
        fn respond(&mut self, _: &Conversation) -> Result<ModelTurn, ModelError> {
            let calls = (0..self.per_turn)
                .map(|_| {
                    self.n += 1;
                    ToolCall {
                        id: format!("c{}", self.n),
                        name: FINGERSPELL_TOOL.into(),
                        input: serde_json::json!({"text": "a"}),
                    }
                })
                .collect();
            Ok(ModelTurn {
                text: None,
                tool_calls: calls,
                usage: TokenUsage {
                    input: 10,
                    output: 2,
                    total: 12,
                },
            })
        }
    }

    #[test]
    fn offline_model_calls_fingerspell_once_verbatim() {
        let mut tools = CountingTools(0);
        let mut model = OfflineModel::default();
        let run = run_agent(
            &mut model,
            "Hello, World 42!",
            &mut tools,
            AgentLimits::default(),
        );
        assert_eq!(run.stop, StopReason::EndTurn);
        assert_eq!(run.model_calls, 2);
        assert_eq!(tools.0, 1);
        assert_eq!(
            run.executed[0].0.input,
            serde_json::json!({"text": "Hello, World 42!"})
        );
        assert!(run.cancelled.is_empty());
        assert!(run.usage.input > 0 && run.usage.output > 0);
        assert_eq!(run.usage.total, run.usage.input + run.usage.output);
    }

    #[test]
    fn offline_token_counts_are_deterministic() {
        let a = run_agent(
            &mut OfflineModel::default(),
            "abc",
            &mut CountingTools(0),
            AgentLimits::default(),
        );
        let b = run_agent(
            &mut OfflineModel::default(),
            "abc",
            &mut CountingTools(0),
            AgentLimits::default(),
        );
        assert_eq!(a.usage, b.usage);
    }

    #[test]
    fn runaway_model_is_capped_at_three_tool_calls() {
        let mut tools = CountingTools(0);
        let mut model = Runaway { per_turn: 2, n: 0 };
        let run = run_agent(&mut model, "a", &mut tools, AgentLimits::default());
        assert_eq!(tools.0, 3);
        assert_eq!(run.executed.len(), 3);
        assert_eq!(run.model_calls, 12);
        assert_eq!(run.stop, StopReason::ModelCallCap);
        assert_eq!(run.cancelled.len(), 2 * 12 - 3);
        assert_eq!(run.cancelled[0].id, "c4");
        assert_eq!(
            run.usage,
            TokenUsage {
                input: 120,
                output: 24,
                total: 144
            }
        );
        // The model was told about each cancellation.
        let cancelled_results = run
            .conversation
            .messages
            .iter()
            .filter_map(|m| match m {
                Message::ToolResults(rs) => Some(rs.iter().filter(|r| r.is_error).count()),
                _ => None,
            })
            .sum::<usize>();
        assert_eq!(cancelled_results, 21);
    }

    #[test]
    fn five_calls_in_one_turn_run_three_and_cancel_two() {
        let mut tools = CountingTools(0);
        let mut model = Runaway { per_turn: 5, n: 0 };
        let limits = AgentLimits {
            max_tool_calls: 3,
            max_model_calls: 1,
        };
        let run = run_agent(&mut model, "a", &mut tools, limits);
        assert_eq!(tools.0, 3);
        let ids: Vec<_> = run.cancelled.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c4", "c5"]);
    }
}
