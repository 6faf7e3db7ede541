//! Rendering steps as Chat Completions chunks.
//!
//! The real service streams `data: {chunk}` events (no `event:` line) and ends
//! with `data: [DONE]`. A response is a first chunk with the role, then one
//! chunk per delta: `content` for text, `reasoning_content` (or the step's
//! [`reasoning_field`](ResponseStep::reasoning_field)) for reasoning, and
//! `tool_calls` fragments for calls, the first fragment of a call carrying its
//! index, id and name and the others pieces of its arguments. A chunk with an
//! empty delta and the `finish_reason` closes the choice; with
//! `stream_options.include_usage`, a chunk with no choices carries the usage.
//!
//! The deltas are the very pieces the Responses rendering sends, so faults and
//! delays placed by the shared [`PlanWriter`] land at the same points on both
//! APIs. Chat Completions has no freeform tools: a custom tool call is sent as
//! a function call whose arguments are `{"input": <input>}`, cut into as many
//! pieces as the input would be.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use crate::item::{CustomToolCallItem, FunctionCallItem, Item, split_into_chunks};
use crate::plan::{CREATED_AT, Plan, PlanWriter, ResponseMeta};
use crate::step::{FailedStep, ResponseStep, Usage};
use crate::tokens;

/// The delta field reasoning goes in unless the step says otherwise.
const DEFAULT_REASONING_FIELD: &str = "reasoning_content";

/// One chunk on the wire, with its keys in the order the real service sends
/// them.
#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    /// Absent unless the request asked for usage; then `null` on every chunk
    /// but the last, as the real service sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Value>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Value,
    finish_reason: Option<&'a str>,
}

/// A mid-stream failure, as OpenRouter and vLLM report one.
#[derive(Serialize)]
struct StreamError<'a> {
    error: StreamErrorObject<'a>,
}

#[derive(Serialize)]
struct StreamErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
}

/// One delta of an item's stream; only `counted` ones are deltas for faults
/// and delays (a call's first fragment, like `response.output_item.added`,
/// is not).
struct Fragment {
    delta: Value,
    counted: bool,
}

/// Writes chunks of one completion into a plan.
struct ChunkWriter<'a> {
    plan: PlanWriter,
    id: String,
    meta: &'a ResponseMeta,
}

impl ChunkWriter<'_> {
    fn data(value: &impl Serialize) -> Bytes {
        // Serializing plain structs of strings and JSON values cannot fail.
        let json = serde_json::to_string(value).unwrap_or_default();
        Bytes::from(format!("data: {json}\n\n"))
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        ChunkWriter::data(&Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: CREATED_AT,
            model: &self.meta.model,
            choices: vec![Choice {
                index: 0,
                delta,
                finish_reason,
            }],
            usage: self.meta.include_usage.then_some(Value::Null),
        })
    }

    fn usage_chunk(&self, usage: &Usage) -> Bytes {
        ChunkWriter::data(&Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: CREATED_AT,
            model: &self.meta.model,
            choices: Vec::new(),
            usage: Some(usage_json(usage)),
        })
    }

    fn role(&mut self) {
        let bytes = self.chunk(json!({"role": "assistant", "content": ""}), None);
        self.plan.event(bytes);
    }
}

/// Render a streamed completion.
pub(crate) fn response_plan(step: &ResponseStep, meta: &ResponseMeta) -> Plan {
    let reasoning_field = step
        .reasoning_field
        .as_deref()
        .unwrap_or(DEFAULT_REASONING_FIELD);
    let mut tool_calls = 0;
    let streams: Vec<(bool, Vec<Fragment>)> = step
        .items
        .iter()
        .enumerate()
        .map(|(output_index, item)| match item {
            Item::Text(text) => (false, text_fragments(text.delta_pieces(), "content")),
            Item::Reasoning(text) => (false, text_fragments(text.delta_pieces(), reasoning_field)),
            Item::FunctionCall(call) => {
                let fragments = function_call_fragments(call, tool_calls, output_index, meta);
                tool_calls += 1;
                (true, fragments)
            }
            Item::CustomToolCall(call) => {
                let fragments = custom_tool_call_fragments(call, tool_calls, output_index, meta);
                tool_calls += 1;
                (true, fragments)
            }
        })
        .collect();
    let fragments = order(streams, step.interleave_tool_calls);
    let total_deltas = fragments.iter().filter(|f| f.counted).count();

    let mut writer = ChunkWriter {
        plan: PlanWriter::for_step(step, total_deltas),
        id: chat_id(meta, step.response_id.as_deref()),
        meta,
    };
    writer.role();
    writer.plan.play_faults();
    for fragment in fragments {
        let bytes = writer.chunk(fragment.delta, None);
        if fragment.counted {
            writer.plan.delta(bytes);
        } else {
            writer.plan.event(bytes);
        }
    }

    let natural = if tool_calls > 0 { "tool_calls" } else { "stop" };
    let finish_reason = step.finish_reason.as_deref().unwrap_or(natural);
    let finish = writer.chunk(json!({}), Some(finish_reason));
    writer.plan.event(finish);
    if meta.include_usage {
        let usage = writer.usage_chunk(&tokens::usage(step, meta.input_tokens));
        writer.plan.event(usage);
    }
    writer.plan.event(Bytes::from_static(b"data: [DONE]\n\n"));
    writer.plan.finish()
}

/// Render a failed completion: the role chunk, then an error event, then the
/// end of the body without `[DONE]`.
pub(crate) fn failed_plan(step: &FailedStep, meta: &ResponseMeta) -> Plan {
    let mut writer = ChunkWriter {
        plan: PlanWriter::plain(),
        id: chat_id(meta, None),
        meta,
    };
    writer.role();
    writer.plan.event(ChunkWriter::data(&StreamError {
        error: StreamErrorObject {
            message: step.message(),
            kind: "server_error",
            code: step.code(),
        },
    }));
    writer.plan.finish()
}

fn chat_id(meta: &ResponseMeta, explicit: Option<&str>) -> String {
    explicit.map_or_else(|| format!("chatcmpl-mock-{}", meta.number), str::to_owned)
}

/// The items' fragments in the order they are sent: item after item, except
/// that with `interleave` each run of consecutive tool calls goes round-robin.
fn order(streams: Vec<(bool, Vec<Fragment>)>, interleave: bool) -> Vec<Fragment> {
    let mut ordered = Vec::new();
    let mut run: Vec<std::vec::IntoIter<Fragment>> = Vec::new();
    for (is_call, fragments) in streams {
        if interleave && is_call {
            run.push(fragments.into_iter());
            continue;
        }

        round_robin(&mut run, &mut ordered);
        ordered.extend(fragments);
    }
    round_robin(&mut run, &mut ordered);
    ordered
}

/// Drain `run` one fragment of each call at a time.
fn round_robin(run: &mut Vec<std::vec::IntoIter<Fragment>>, ordered: &mut Vec<Fragment>) {
    while !run.is_empty() {
        run.retain_mut(|fragments| match fragments.next() {
            Some(fragment) => {
                ordered.push(fragment);
                true
            }
            None => false,
        });
    }
}

fn text_fragments(pieces: Vec<String>, field: &str) -> Vec<Fragment> {
    pieces
        .into_iter()
        .map(|piece| Fragment {
            delta: json!({ field: piece }),
            counted: true,
        })
        .collect()
}

fn function_call_fragments(
    call: &FunctionCallItem,
    index: usize,
    output_index: usize,
    meta: &ResponseMeta,
) -> Vec<Fragment> {
    let call_id = call_id_of(call.call_id.as_deref(), meta, output_index);
    tool_call_fragments(index, &call_id, &call.name, call.delta_pieces())
}

fn custom_tool_call_fragments(
    call: &CustomToolCallItem,
    index: usize,
    output_index: usize,
    meta: &ResponseMeta,
) -> Vec<Fragment> {
    let call_id = call_id_of(call.call_id.as_deref(), meta, output_index);
    let arguments = json!({"input": call.input}).to_string();
    // As many pieces as the input has on Responses, so faults count the same.
    let pieces = split_into_chunks(&arguments, call.delta_pieces().len());
    tool_call_fragments(index, &call_id, &call.name, pieces)
}

/// The same default call id the Responses rendering uses.
fn call_id_of(explicit: Option<&str>, meta: &ResponseMeta, output_index: usize) -> String {
    explicit.map_or_else(
        || format!("call_mock_{}_{output_index}", meta.number),
        str::to_owned,
    )
}

fn tool_call_fragments(
    index: usize,
    call_id: &str,
    name: &str,
    pieces: Vec<String>,
) -> Vec<Fragment> {
    let head = Fragment {
        delta: json!({"tool_calls": [{
            "index": index, "id": call_id, "type": "function",
            "function": {"name": name, "arguments": ""},
        }]}),
        counted: false,
    };
    let arguments = pieces.into_iter().map(|piece| Fragment {
        delta: json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
        counted: true,
    });
    std::iter::once(head).chain(arguments).collect()
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Step;

    fn meta(include_usage: bool) -> ResponseMeta {
        ResponseMeta {
            number: 2,
            model: "m".into(),
            input_tokens: 10,
            include_usage,
            include_encrypted_reasoning: false,
        }
    }

    /// The data of every event, `!drop`-style markers for the rest.
    fn events(step: Step, include_usage: bool) -> Vec<String> {
        let Step::Response(response) = step else {
            panic!("not a response");
        };
        response_plan(&response, &meta(include_usage))
            .iter()
            .map(|segment| match segment.shown() {
                Ok(text) => {
                    let data = text.strip_prefix("data: ").unwrap();
                    data.strip_suffix("\n\n").unwrap().to_owned()
                }
                Err(marker) => marker.to_owned(),
            })
            .collect()
    }

    /// Each event as JSON (`[DONE]` as a string): compared as values, since
    /// a `json!` object's key order depends on serde_json's `preserve_order`.
    fn parsed(events: &[String]) -> Vec<Value> {
        events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap_or_else(|_| Value::String(e.clone())))
            .collect()
    }

    #[test]
    fn chunks_are_data_lines_with_keys_in_api_order() {
        let events = events(Step::text("hi"), false);
        // The chunk's own keys are in the API's order.
        assert!(
            events[0].starts_with(r#"{"id":"chatcmpl-mock-2","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":"#),
            "{}",
            events[0]
        );
        assert_eq!(
            parsed(&events),
            [
                json!({"id":"chatcmpl-mock-2","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":"","role":"assistant"},"finish_reason":null}]}),
                json!({"id":"chatcmpl-mock-2","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}),
                json!({"id":"chatcmpl-mock-2","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn with_usage_every_chunk_has_a_usage_key_and_the_last_has_the_numbers() {
        let events = events(Step::text("hi").with_usage(3, 4), true);
        assert!(events[..3].iter().all(|e| e.ends_with(r#","usage":null}"#)));
        assert_eq!(
            parsed(&events)[3],
            json!({"id":"chatcmpl-mock-2","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[],"usage":{"completion_tokens":4,"completion_tokens_details":{"reasoning_tokens":0},"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"total_tokens":7}})
        );
        assert_eq!(events[4], "[DONE]");
    }

    #[test]
    fn interleaving_goes_round_robin_within_a_run_of_calls() {
        let step = Step::response(vec![
            Item::text("a"),
            Item::function_call("c0", "f", Value::String("x".repeat(20))),
            Item::function_call("c1", "g", Value::String("y".repeat(20))),
            Item::text("b"),
        ])
        .with_interleaved_tool_calls();
        let shapes: Vec<String> = events(step, false)
            .iter()
            .filter(|e| e.starts_with('{'))
            .map(|e| {
                let delta = &serde_json::from_str::<Value>(e).unwrap()["choices"][0]["delta"];
                match &delta["tool_calls"][0] {
                    // Keys sorted, whatever order the object kept.
                    Value::Null => serde_json::to_string(
                        &delta
                            .as_object()
                            .unwrap()
                            .iter()
                            .collect::<std::collections::BTreeMap<_, _>>(),
                    )
                    .unwrap(),
                    call if call.get("id").is_some() => format!("head{}", call["index"]),
                    call => format!("args{}", call["index"]),
                }
            })
            .collect();
        assert_eq!(
            shapes,
            [
                r#"{"content":"","role":"assistant"}"#,
                r#"{"content":"a"}"#,
                "head0",
                "head1",
                "args0",
                "args1",
                "args0",
                "args1",
                r#"{"content":"b"}"#,
                "{}",
            ]
        );
    }

    #[test]
    fn a_custom_call_is_cut_into_as_many_pieces_as_its_input() {
        let Item::CustomToolCall(call) = Item::custom_tool_call("c", "apply_patch", "p".repeat(40))
        else {
            panic!("not a custom call");
        };
        let fragments = custom_tool_call_fragments(&call, 0, 0, &meta(false));
        let pieces: Vec<&str> = fragments[1..]
            .iter()
            .map(|f| {
                f.delta["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(pieces.len(), call.delta_pieces().len());
        assert_eq!(
            serde_json::from_str::<Value>(&pieces.concat()).unwrap(),
            json!({"input": "p".repeat(40)})
        );
    }

    #[test]
    fn a_drop_cuts_after_the_same_deltas_as_on_responses() {
        let events = events(Step::text("one two three").with_drop_after(2), false);
        assert_eq!(events.len(), 4);
        assert!(events[2].contains(r#""content":"two ""#));
        assert_eq!(events[3], "!drop");
    }
}
