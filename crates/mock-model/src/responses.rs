//! Rendering steps as Responses API server-sent events.
//!
//! Every event is `event: <type>` then `data: {"type":..,"sequence_number":..,
//! ..}`, with the names, fields and ordering of the real API. Delays and
//! faults are placed by the shared [`PlanWriter`].

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::item::{CustomToolCallItem, FunctionCallItem, Item, StreamedText};
use crate::plan::{CREATED_AT, Plan, PlanWriter, ResponseMeta};
use crate::step::{FailedStep, ResponseStep, Usage};
use crate::tokens;

fn response_id(meta: &ResponseMeta, explicit: Option<&str>) -> String {
    explicit.map_or_else(|| format!("resp_mock_{}", meta.number), str::to_owned)
}

fn response_object(meta: &ResponseMeta, id: &str, status: &str) -> Map<String, Value> {
    let mut response = Map::new();
    response.insert("id".into(), id.into());
    response.insert("object".into(), "response".into());
    response.insert("created_at".into(), CREATED_AT.into());
    response.insert("status".into(), status.into());
    response.insert("model".into(), meta.model.clone().into());
    response.insert("output".into(), Value::Array(Vec::new()));
    response.insert("usage".into(), Value::Null);
    response.insert("error".into(), Value::Null);
    response.insert("incomplete_details".into(), Value::Null);
    response
}

/// Writes Responses events into a plan, numbering them.
struct EventWriter {
    plan: PlanWriter,
    sequence: u64,
}

impl EventWriter {
    fn new(plan: PlanWriter) -> EventWriter {
        EventWriter { plan, sequence: 0 }
    }

    /// Append one event.
    fn event(&mut self, kind: &str, fields: Map<String, Value>) {
        if let Some(bytes) = self.render(kind, fields) {
            self.plan.event(bytes);
        }
    }

    /// Append a delta event.
    fn delta(&mut self, kind: &str, fields: Map<String, Value>) {
        if let Some(bytes) = self.render(kind, fields) {
            self.plan.delta(bytes);
        }
    }

    /// `event: <kind>` and `data:` with `type` and `sequence_number` first,
    /// then `fields`; `None` once the plan has ended, so that sequence
    /// numbers are not used up by events that are never sent.
    fn render(&mut self, kind: &str, fields: Map<String, Value>) -> Option<Bytes> {
        if self.plan.is_ended() {
            return None;
        }

        let object = Value::Object(fields).to_string();
        let inner = object
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or_default();
        let mut text = String::with_capacity(object.len() + kind.len() * 2 + 48);
        text.push_str("event: ");
        text.push_str(kind);
        text.push_str("\ndata: {\"type\":");
        text.push_str(&Value::from(kind).to_string());
        text.push_str(",\"sequence_number\":");
        text.push_str(&self.sequence.to_string());
        if !inner.is_empty() {
            text.push(',');
            text.push_str(inner);
        }
        text.push_str("}\n\n");
        self.sequence += 1;
        Some(Bytes::from(text))
    }
}

/// Render a streamed response.
pub(crate) fn response_plan(step: &ResponseStep, meta: &ResponseMeta) -> Plan {
    let id = response_id(meta, step.response_id.as_deref());
    let mut rendered: Vec<RenderedItem> = step
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| RenderedItem::new(item, index, meta))
        .collect();
    let total_deltas: usize = rendered.iter().map(|item| item.pieces.len()).sum();
    let incomplete = incomplete_reason(step.finish_reason.as_deref());
    if incomplete.is_some() {
        // The real API marks the item it was writing when it stopped.
        if let Some(status) = rendered
            .last_mut()
            .and_then(|item| item.done.get_mut("status"))
        {
            *status = "incomplete".into();
        }
    }

    let mut writer = EventWriter::new(PlanWriter::for_step(step, total_deltas));
    writer.event(
        "response.created",
        fields([("response", response_object(meta, &id, "in_progress").into())]),
    );
    writer.plan.play_faults();

    let mut output = Vec::with_capacity(rendered.len());
    for item in &rendered {
        item.write(&mut writer);
        output.push(item.done.clone());
    }

    let usage = tokens::usage(step, meta.input_tokens);
    let (kind, status) = match incomplete {
        Some(_) => ("response.incomplete", "incomplete"),
        None => ("response.completed", "completed"),
    };
    let mut response = response_object(meta, &id, status);
    response.insert("output".into(), Value::Array(output));
    response.insert("usage".into(), usage_json(&usage));
    if let Some(reason) = incomplete {
        response.insert("incomplete_details".into(), json!({"reason": reason}));
    }
    writer.event(kind, fields([("response", response.into())]));
    writer.plan.finish()
}

/// The `incomplete_details.reason` a finish reason ends a response with, if
/// it does not complete it.
fn incomplete_reason(finish_reason: Option<&str>) -> Option<&'static str> {
    match finish_reason? {
        "length" => Some("max_output_tokens"),
        "content_filter" => Some("content_filter"),
        _ => None,
    }
}

/// Render a `response.failed` stream.
pub(crate) fn failed_plan(step: &FailedStep, meta: &ResponseMeta) -> Plan {
    let id = response_id(meta, None);
    let mut writer = EventWriter::new(PlanWriter::plain());
    writer.event(
        "response.created",
        fields([("response", response_object(meta, &id, "in_progress").into())]),
    );
    let mut response = response_object(meta, &id, "failed");
    response.insert(
        "error".into(),
        json!({"code": step.code(), "message": step.message()}),
    );
    writer.event("response.failed", fields([("response", response.into())]));
    writer.plan.finish()
}

/// An item with its ids, deltas and final form worked out.
struct RenderedItem {
    output_index: usize,
    id: String,
    kind: ItemKind,
    pieces: Vec<String>,
    /// The full text (message, reasoning summary) or arguments (call).
    full: String,
    /// The item as `response.output_item.added` shows it.
    added: Value,
    /// The item as `response.output_item.done` and `response.completed` show it.
    done: Value,
}

#[derive(Clone, Copy)]
enum ItemKind {
    Message,
    FunctionCall,
    CustomToolCall,
    Reasoning,
}

impl RenderedItem {
    fn new(item: &Item, output_index: usize, meta: &ResponseMeta) -> RenderedItem {
        let number = meta.number;
        match item {
            Item::Text(text) => RenderedItem::message(text, output_index, number),
            Item::FunctionCall(call) => RenderedItem::function_call(call, output_index, number),
            Item::Reasoning(text) => RenderedItem::reasoning(
                text,
                output_index,
                number,
                meta.include_encrypted_reasoning,
            ),
            Item::CustomToolCall(call) => {
                RenderedItem::custom_tool_call(call, output_index, number)
            }
        }
    }

    fn custom_tool_call(
        call: &CustomToolCallItem,
        output_index: usize,
        number: usize,
    ) -> RenderedItem {
        let id = format!("ctc_mock_{number}_{output_index}");
        let call_id = call
            .call_id
            .clone()
            .unwrap_or_else(|| format!("call_mock_{number}_{output_index}"));
        RenderedItem {
            added: json!({
                "type": "custom_tool_call", "id": id, "call_id": call_id, "name": call.name,
                "input": "", "status": "in_progress",
            }),
            done: json!({
                "type": "custom_tool_call", "id": id, "call_id": call_id, "name": call.name,
                "input": call.input, "status": "completed",
            }),
            output_index,
            id,
            kind: ItemKind::CustomToolCall,
            pieces: call.delta_pieces(),
            full: call.input.clone(),
        }
    }

    fn message(text: &StreamedText, output_index: usize, number: usize) -> RenderedItem {
        let id = format!("msg_mock_{number}_{output_index}");
        let full = text.full_text();
        RenderedItem {
            added: json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}),
            done: json!({
                "type": "message", "id": id, "status": "completed", "role": "assistant",
                "content": [output_text_part(&full)],
            }),
            output_index,
            id,
            kind: ItemKind::Message,
            pieces: text.delta_pieces(),
            full,
        }
    }

    fn function_call(call: &FunctionCallItem, output_index: usize, number: usize) -> RenderedItem {
        let id = format!("fc_mock_{number}_{output_index}");
        let call_id = call
            .call_id
            .clone()
            .unwrap_or_else(|| format!("call_mock_{number}_{output_index}"));
        let full = call.arguments_string();
        RenderedItem {
            added: json!({
                "type": "function_call", "id": id, "call_id": call_id, "name": call.name,
                "arguments": "", "status": "in_progress",
            }),
            done: json!({
                "type": "function_call", "id": id, "call_id": call_id, "name": call.name,
                "arguments": full, "status": "completed",
            }),
            output_index,
            id,
            kind: ItemKind::FunctionCall,
            pieces: call.delta_pieces(),
            full,
        }
    }

    fn reasoning(
        text: &StreamedText,
        output_index: usize,
        number: usize,
        encrypted: bool,
    ) -> RenderedItem {
        let id = format!("rs_mock_{number}_{output_index}");
        let full = text.full_text();
        let mut done = json!({"type": "reasoning", "id": id, "summary": [summary_part(&full)]});
        if encrypted {
            // Asked for, the real API returns the reasoning as an opaque
            // blob; the mock's is recognisable: `enc:` and the summary.
            done["encrypted_content"] = json!(format!("enc:{id}:{full}"));
        }
        RenderedItem {
            added: json!({"type": "reasoning", "id": id, "summary": []}),
            done,
            output_index,
            id,
            kind: ItemKind::Reasoning,
            pieces: text.delta_pieces(),
            full,
        }
    }

    /// The events of this item, in the order the real API sends them.
    fn write(&self, writer: &mut EventWriter) {
        let index = || Value::from(self.output_index);
        let item_id = || Value::from(self.id.as_str());
        writer.event(
            "response.output_item.added",
            fields([("output_index", index()), ("item", self.added.clone())]),
        );
        match self.kind {
            ItemKind::Message => {
                let at = |extra: [(&str, Value); 1]| {
                    let mut map = fields([
                        ("item_id", item_id()),
                        ("output_index", index()),
                        ("content_index", 0.into()),
                    ]);
                    map.extend(extra.map(|(k, v)| (k.to_owned(), v)));
                    map
                };
                writer.event(
                    "response.content_part.added",
                    at([("part", output_text_part(""))]),
                );
                for piece in &self.pieces {
                    let mut map = at([("delta", piece.as_str().into())]);
                    map.insert("logprobs".into(), json!([]));
                    writer.delta("response.output_text.delta", map);
                }
                let mut map = at([("text", self.full.as_str().into())]);
                map.insert("logprobs".into(), json!([]));
                writer.event("response.output_text.done", map);
                writer.event(
                    "response.content_part.done",
                    at([("part", output_text_part(&self.full))]),
                );
            }
            ItemKind::FunctionCall => {
                for piece in &self.pieces {
                    writer.delta(
                        "response.function_call_arguments.delta",
                        fields([
                            ("item_id", item_id()),
                            ("output_index", index()),
                            ("delta", piece.as_str().into()),
                        ]),
                    );
                }
                let name = self.done.get("name").cloned().unwrap_or(Value::Null);
                writer.event(
                    "response.function_call_arguments.done",
                    fields([
                        ("item_id", item_id()),
                        ("output_index", index()),
                        ("name", name),
                        ("arguments", self.full.as_str().into()),
                    ]),
                );
            }
            ItemKind::CustomToolCall => {
                for piece in &self.pieces {
                    writer.delta(
                        "response.custom_tool_call_input.delta",
                        fields([
                            ("item_id", item_id()),
                            ("output_index", index()),
                            ("delta", piece.as_str().into()),
                        ]),
                    );
                }
                writer.event(
                    "response.custom_tool_call_input.done",
                    fields([
                        ("item_id", item_id()),
                        ("output_index", index()),
                        ("input", self.full.as_str().into()),
                    ]),
                );
            }
            ItemKind::Reasoning => {
                let at = |extra: [(&str, Value); 1]| {
                    let mut map = fields([
                        ("item_id", item_id()),
                        ("output_index", index()),
                        ("summary_index", 0.into()),
                    ]);
                    map.extend(extra.map(|(k, v)| (k.to_owned(), v)));
                    map
                };
                writer.event(
                    "response.reasoning_summary_part.added",
                    at([("part", summary_part(""))]),
                );
                for piece in &self.pieces {
                    writer.delta(
                        "response.reasoning_summary_text.delta",
                        at([("delta", piece.as_str().into())]),
                    );
                }
                writer.event(
                    "response.reasoning_summary_text.done",
                    at([("text", self.full.as_str().into())]),
                );
                writer.event(
                    "response.reasoning_summary_part.done",
                    at([("part", summary_part(&self.full))]),
                );
            }
        }
        writer.event(
            "response.output_item.done",
            fields([("output_index", index()), ("item", self.done.clone())]),
        );
    }
}

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn output_text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn summary_part(text: &str) -> Value {
    json!({"type": "summary_text", "text": text})
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{MALFORMED_LINE, Segment};
    use crate::step::Step;

    fn meta() -> ResponseMeta {
        ResponseMeta {
            number: 1,
            model: "m".into(),
            input_tokens: 10,
            include_usage: false,
            include_encrypted_reasoning: false,
        }
    }

    fn plan_of(step: Step) -> Plan {
        let Step::Response(response) = step else {
            panic!("not a response");
        };
        response_plan(&response, &meta())
    }

    /// The event kinds in a plan, with `!pause`, `!drop`, `!hang` and
    /// `!malformed` markers.
    fn kinds(plan: &Plan) -> Vec<String> {
        plan.iter()
            .map(|segment| match segment.shown() {
                Ok(text) if text.as_bytes() == MALFORMED_LINE => "!malformed".to_owned(),
                Ok(text) => {
                    let first = text.lines().next().unwrap();
                    first.trim_start_matches("event: ").to_owned()
                }
                Err(marker) => marker.to_owned(),
            })
            .collect()
    }

    #[test]
    fn data_lines_start_with_type_and_sequence_number() {
        let plan = plan_of(Step::text("hi"));
        let Segment::Bytes(first) = &plan[0] else {
            panic!("no bytes");
        };
        let text = std::str::from_utf8(first).unwrap();
        assert!(
            text.starts_with("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":"),
            "{text}"
        );
        assert!(text.ends_with("}\n\n"));
        for segment in &plan {
            let Segment::Bytes(bytes) = segment else {
                continue;
            };
            let text = std::str::from_utf8(bytes).unwrap();
            let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
            let _: Value = serde_json::from_str(data).unwrap();
        }
    }

    #[test]
    fn faults_land_after_the_right_delta_and_end_the_plan() {
        let plan = plan_of(Step::text("a b c").with_drop_after(2).with_stall(0, 5));
        assert_eq!(
            kinds(&plan),
            [
                "response.created",
                "!pause",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "!drop",
            ]
        );
    }

    #[test]
    fn delta_delay_separates_deltas_only() {
        let plan = plan_of(
            Step::text("a b c")
                .with_delta_delay(3)
                .with_malformed_after(9),
        );
        let kinds = kinds(&plan);
        assert_eq!(kinds.iter().filter(|k| *k == "!pause").count(), 2);
        let malformed = kinds.iter().position(|k| k == "!malformed").unwrap();
        assert_eq!(kinds[malformed - 1], "response.output_text.delta");
        assert_eq!(kinds.last().unwrap(), "response.completed");
    }

    #[test]
    fn empty_fields_still_give_valid_json() {
        let mut writer = EventWriter::new(PlanWriter::plain());
        writer.event("x", Map::new());
        assert_eq!(
            writer.plan.finish(),
            [Segment::Bytes(Bytes::from_static(
                b"event: x\ndata: {\"type\":\"x\",\"sequence_number\":0}\n\n"
            ))]
        );
    }
}
