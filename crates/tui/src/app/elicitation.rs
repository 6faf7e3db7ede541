//! An MCP server's question (`mcpServer/elicitation/request`, form mode) as
//! a form: one input per property of its requested schema, in the schema's
//! order. A string, a number or an integer is typed; a boolean is a toggle;
//! an `enum` (or `oneOf` of `const`s) is a choice. Enter checks the form
//! against the schema (required fields, numbers that parse, lengths and
//! bounds) and, if it fits, answers `accept` with the values typed as the
//! schema says; what does not fit keeps the form open and says why, so the
//! server never gets content it would reject. Ctrl+D declines, Esc cancels.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Map, Number, Value};
use tiller_client::protocol::{McpServerElicitationRequestParams, RequestId};

use crate::clean::clean;

/// The most characters a text field holds (a paste is cut there).
const FIELD_MAX_CHARS: usize = 4096;

/// An MCP server's question, being answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Elicitation {
    /// The request.
    pub request_id: RequestId,
    /// The turn it belongs to, if one ran: its end closes it.
    pub turn_id: Option<String>,
    /// The server that asks.
    pub server: String,
    /// What it asks.
    pub message: String,
    /// One per property of the requested schema.
    pub fields: Vec<Field>,
    /// The field being edited.
    pub focus: usize,
    /// Why the last Enter did not send the answer.
    pub problem: Option<String>,
}

/// One input of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The property's name (the key of the answer).
    pub name: String,
    /// Its `title`, or its name.
    pub label: String,
    /// Its `description`.
    pub description: Option<String>,
    /// Whether the schema lists it as required.
    pub required: bool,
    /// The property's schema (for its bounds).
    schema: Value,
    /// What is entered.
    pub input: Input,
}

/// What a field holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Typed text, read as `kind` says.
    Text {
        /// What is typed.
        text: String,
        /// What it must be.
        kind: TextKind,
    },
    /// A boolean.
    Toggle(bool),
    /// One of the schema's values.
    Choice {
        /// `(value, label)`.
        options: Vec<(Value, String)>,
        /// The one chosen, if any.
        selected: Option<usize>,
    },
}

/// What a text field must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Any text (`string`, and a type the form has no input for).
    String,
    /// A number.
    Number,
    /// A whole number.
    Integer,
}

/// What a key did to the form.
#[derive(Debug, Clone, PartialEq)]
pub enum FormKey {
    /// The form stays open.
    Stay,
    /// Enter, and the form fits the schema: `accept` with this content.
    Accept(Value),
    /// Ctrl+D.
    Decline,
    /// Esc.
    Cancel,
}

impl Elicitation {
    /// The form for a request.
    pub fn new(request_id: RequestId, params: McpServerElicitationRequestParams) -> Elicitation {
        let schema = &params.requested_schema;
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let fields = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, property)| Field::new(name, property, required.contains(&name.as_str())))
            .collect();
        Elicitation {
            request_id,
            turn_id: params.turn_id,
            server: params.server_name,
            message: params.message,
            fields,
            focus: 0,
            problem: None,
        }
    }

    /// A key pressed while the form is open.
    pub fn key(&mut self, key: KeyEvent) -> FormKey {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let count = self.fields.len().max(1);
        match key.code {
            KeyCode::Esc => return FormKey::Cancel,
            KeyCode::Char('d') if ctrl => return FormKey::Decline,
            KeyCode::Enter => match self.content() {
                Ok(content) => return FormKey::Accept(content),
                Err((index, problem)) => {
                    self.focus = index;
                    self.problem = Some(problem);
                }
            },
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % count,
            KeyCode::BackTab | KeyCode::Up => self.focus = (self.focus + count - 1) % count,
            _ => {
                let Some(field) = self.fields.get_mut(self.focus) else {
                    return FormKey::Stay;
                };
                if field.edit(key.code, ctrl || alt) {
                    self.problem = None;
                }
            }
        }
        FormKey::Stay
    }

    /// Text pasted: into the field being edited, if it takes text.
    pub fn paste(&mut self, pasted: &str) {
        if let Some(Field {
            input: Input::Text { text, .. },
            ..
        }) = self.fields.get_mut(self.focus)
        {
            let room = FIELD_MAX_CHARS.saturating_sub(text.chars().count());
            text.extend(
                clean(pasted)
                    .chars()
                    .map(|c| if c == '\n' { ' ' } else { c })
                    .take(room),
            );
            self.problem = None;
        }
    }

    /// The answer's content, typed as the schema says; or the first field
    /// that does not fit, and why.
    pub fn content(&self) -> Result<Value, (usize, String)> {
        let mut content = Map::new();
        for (index, field) in self.fields.iter().enumerate() {
            if let Some(value) = field.value().map_err(|problem| (index, problem))? {
                content.insert(field.name.clone(), value);
            }
        }
        Ok(Value::Object(content))
    }
}

impl Field {
    fn new(name: &str, schema: &Value, required: bool) -> Field {
        let text = |key: &str| schema.get(key).and_then(Value::as_str).map(clean);
        let default = schema.get("default").filter(|d| !d.is_null());
        let options = choices(schema);
        let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
        let input = if !options.is_empty() {
            let selected = default.and_then(|d| options.iter().position(|(v, _)| v == d));
            Input::Choice { options, selected }
        } else if kind == "boolean" {
            Input::Toggle(default.and_then(Value::as_bool).unwrap_or(false))
        } else {
            let kind = match kind {
                "number" => TextKind::Number,
                "integer" => TextKind::Integer,
                _ => TextKind::String,
            };
            let text = match default {
                Some(Value::String(s)) => clean(s),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            Input::Text { text, kind }
        };
        Field {
            name: name.to_owned(),
            label: text("title").unwrap_or_else(|| clean(name)),
            description: text("description"),
            required,
            schema: schema.clone(),
            input,
        }
    }

    /// A key on this field; whether it changed what it holds.
    fn edit(&mut self, code: KeyCode, modified: bool) -> bool {
        match &mut self.input {
            Input::Text { text, .. } => match code {
                KeyCode::Backspace => text.pop().is_some(),
                KeyCode::Char('u') if modified => {
                    text.clear();
                    true
                }
                KeyCode::Char(c) if !modified && text.chars().count() < FIELD_MAX_CHARS => {
                    text.push(c);
                    true
                }
                _ => false,
            },
            Input::Toggle(on) => match code {
                KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right => {
                    *on = !*on;
                    true
                }
                KeyCode::Char('y') => {
                    *on = true;
                    true
                }
                KeyCode::Char('n') => {
                    *on = false;
                    true
                }
                _ => false,
            },
            Input::Choice { options, selected } => {
                let count = options.len();
                let next = match (code, *selected) {
                    (KeyCode::Right | KeyCode::Char(' '), None) => 0,
                    (KeyCode::Right | KeyCode::Char(' '), Some(i)) => (i + 1) % count,
                    (KeyCode::Left, None) => count - 1,
                    (KeyCode::Left, Some(i)) => (i + count - 1) % count,
                    _ => return false,
                };
                *selected = Some(next);
                true
            }
        }
    }

    /// What it answers: `None` for an optional field left empty.
    fn value(&self) -> Result<Option<Value>, String> {
        let label = &self.label;
        match &self.input {
            Input::Toggle(on) => Ok(Some(Value::Bool(*on))),
            Input::Choice { options, selected } => match selected {
                Some(i) => Ok(Some(options[*i].0.clone())),
                None if self.required => Err(format!("choose a value for {label} (←/→)")),
                None => Ok(None),
            },
            Input::Text { text, kind } => {
                let trimmed = text.trim();
                if trimmed.is_empty() {
                    return if self.required {
                        Err(format!("{label} is required"))
                    } else {
                        Ok(None)
                    };
                }
                let value = match kind {
                    TextKind::String => {
                        let length = text.chars().count();
                        if let Some(min) = self.bound("minLength")
                            && (length as f64) < min
                        {
                            return Err(format!("{label} needs at least {min} characters"));
                        }
                        if let Some(max) = self.bound("maxLength")
                            && (length as f64) > max
                        {
                            return Err(format!("{label} takes at most {max} characters"));
                        }
                        return Ok(Some(Value::String(text.clone())));
                    }
                    TextKind::Integer => match trimmed.parse::<i64>() {
                        Ok(n) => Number::from(n),
                        Err(_) => return Err(format!("{label} must be a whole number")),
                    },
                    TextKind::Number => match trimmed.parse::<i64>() {
                        Ok(n) => Number::from(n),
                        Err(_) => match trimmed.parse::<f64>().ok().and_then(Number::from_f64) {
                            Some(n) => n,
                            None => return Err(format!("{label} must be a number")),
                        },
                    },
                };
                let n = value.as_f64().unwrap_or(0.0);
                if let Some(min) = self.bound("minimum")
                    && n < min
                {
                    return Err(format!("{label} must be at least {min}"));
                }
                if let Some(max) = self.bound("maximum")
                    && n > max
                {
                    return Err(format!("{label} must be at most {max}"));
                }
                Ok(Some(Value::Number(value)))
            }
        }
    }

    fn bound(&self, key: &str) -> Option<f64> {
        self.schema.get(key).and_then(Value::as_f64)
    }
}

/// The values an `enum` (labelled by `enumNames`) or a `oneOf`/`anyOf` of
/// `const`s (labelled by `title`) allows.
fn choices(schema: &Value) -> Vec<(Value, String)> {
    let label = |value: &Value| match value {
        Value::String(s) => clean(s),
        other => other.to_string(),
    };
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names = schema.get("enumNames").and_then(Value::as_array);
        return values
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let name = names
                    .and_then(|n| n.get(i))
                    .and_then(Value::as_str)
                    .map_or_else(|| label(value), clean);
                (value.clone(), name)
            })
            .collect();
    }
    ["oneOf", "anyOf"]
        .iter()
        .filter_map(|key| schema.get(*key).and_then(Value::as_array))
        .flatten()
        .filter_map(|option| {
            let value = option.get("const")?.clone();
            let name = option
                .get("title")
                .and_then(Value::as_str)
                .map_or_else(|| label(&value), clean);
            Some((value, name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn form(schema: Value) -> Elicitation {
        let params = serde_json::from_value(json!({
            "threadId": "t", "turnId": "u", "serverName": "shop", "environmentId": null,
            "mode": "form", "_meta": null, "message": "Your order?", "requestedSchema": schema,
        }))
        .unwrap();
        Elicitation::new(RequestId::String("elicitation:t:1".into()), params)
    }

    fn press(form: &mut Elicitation, code: KeyCode) -> FormKey {
        form.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn type_text(form: &mut Elicitation, text: &str) {
        for c in text.chars() {
            press(form, KeyCode::Char(c));
        }
    }

    fn order_form() -> Elicitation {
        form(json!({"type": "object", "properties": {
            "name": {"type": "string", "title": "Name", "minLength": 2},
            "count": {"type": "integer", "minimum": 1},
            "weight": {"type": "number"},
            "gift": {"type": "boolean", "default": true},
            "size": {"type": "string", "enum": ["s", "m", "l"], "enumNames": ["Small", "Medium", "Large"]},
            "colour": {"type": "string", "oneOf": [{"const": "r", "title": "Red"}, {"const": "b", "title": "Blue"}]},
        }, "required": ["name", "count", "size"]}))
    }

    /// The index of field `name` (the fields come in the order the parsed
    /// JSON object keeps its keys).
    fn index(form: &Elicitation, name: &str) -> usize {
        form.fields.iter().position(|f| f.name == name).unwrap()
    }

    fn input<'a>(form: &'a Elicitation, name: &str) -> &'a Input {
        &form.fields[index(form, name)].input
    }

    fn focus(form: &mut Elicitation, name: &str) {
        form.focus = index(form, name);
    }

    #[test]
    fn each_property_becomes_an_input_of_its_type() {
        let form = order_form();
        assert_eq!(form.fields.len(), 6);
        let name = &form.fields[index(&form, "name")];
        assert_eq!((name.label.as_str(), name.required), ("Name", true));
        assert!(!form.fields[index(&form, "weight")].required);
        assert!(matches!(
            input(&form, "count"),
            Input::Text {
                kind: TextKind::Integer,
                ..
            }
        ));
        assert_eq!(input(&form, "gift"), &Input::Toggle(true));
        assert!(
            matches!(input(&form, "size"), Input::Choice { options, selected: None } if options[1] == (json!("m"), "Medium".to_owned()))
        );
        assert!(
            matches!(input(&form, "colour"), Input::Choice { options, .. } if options[1] == (json!("b"), "Blue".to_owned()))
        );
    }

    #[test]
    fn enter_answers_with_values_typed_as_the_schema_says() {
        let mut form = order_form();
        focus(&mut form, "name");
        type_text(&mut form, "Ada");
        focus(&mut form, "count");
        type_text(&mut form, "3");
        focus(&mut form, "weight");
        type_text(&mut form, "2.5");
        focus(&mut form, "gift");
        press(&mut form, KeyCode::Char(' '));
        focus(&mut form, "size");
        press(&mut form, KeyCode::Right);
        press(&mut form, KeyCode::Right);
        assert_eq!(
            press(&mut form, KeyCode::Enter),
            FormKey::Accept(
                json!({"name": "Ada", "count": 3, "weight": 2.5, "gift": false, "size": "m"})
            )
        );
    }

    #[test]
    fn a_missing_required_field_or_a_bad_number_keeps_the_form_and_says_why() {
        let mut form = form(json!({"type": "object", "properties": {
            "a_name": {"type": "string", "title": "Name", "minLength": 2},
            "b_count": {"type": "integer", "minimum": 1},
            "c_size": {"type": "string", "enum": ["s", "m"]},
        }, "required": ["a_name", "b_count", "c_size"]}));
        press(&mut form, KeyCode::Tab);
        assert_eq!(press(&mut form, KeyCode::Enter), FormKey::Stay);
        assert_eq!(form.focus, index(&form, "a_name"));
        assert_eq!(form.problem.as_deref(), Some("Name is required"));
        type_text(&mut form, "A");
        assert_eq!(form.problem, None, "typing clears the complaint");
        press(&mut form, KeyCode::Enter);
        assert_eq!(
            form.problem.as_deref(),
            Some("Name needs at least 2 characters")
        );
        type_text(&mut form, "da");
        focus(&mut form, "b_count");
        type_text(&mut form, "three");
        press(&mut form, KeyCode::Enter);
        assert_eq!(form.focus, index(&form, "b_count"));
        assert_eq!(
            form.problem.as_deref(),
            Some("b_count must be a whole number")
        );
        form.key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        type_text(&mut form, "0");
        press(&mut form, KeyCode::Enter);
        assert_eq!(form.problem.as_deref(), Some("b_count must be at least 1"));
        press(&mut form, KeyCode::Backspace);
        type_text(&mut form, "2");
        press(&mut form, KeyCode::Enter);
        assert_eq!(
            form.problem.as_deref(),
            Some("choose a value for c_size (←/→)")
        );
        assert_eq!(form.focus, index(&form, "c_size"));
        press(&mut form, KeyCode::Left);
        assert_eq!(
            press(&mut form, KeyCode::Enter),
            FormKey::Accept(json!({"a_name": "Ada", "b_count": 2, "c_size": "m"}))
        );
    }

    #[test]
    fn shift_tab_goes_back_and_wraps() {
        let mut form = order_form();
        press(&mut form, KeyCode::BackTab);
        assert_eq!(form.focus, 5);
        press(&mut form, KeyCode::Tab);
        assert_eq!(form.focus, 0);
    }

    #[test]
    fn esc_cancels_and_ctrl_d_declines() {
        let mut form = order_form();
        assert_eq!(press(&mut form, KeyCode::Esc), FormKey::Cancel);
        assert_eq!(
            form.key(KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL)),
            FormKey::Decline
        );
    }

    #[test]
    fn a_form_without_fields_accepts_an_empty_object() {
        let mut form = form(json!({"type": "object", "properties": {}}));
        assert_eq!(press(&mut form, KeyCode::Tab), FormKey::Stay);
        assert_eq!(press(&mut form, KeyCode::Enter), FormKey::Accept(json!({})));
    }

    #[test]
    fn a_paste_goes_into_the_text_field_on_one_line() {
        let mut form = order_form();
        focus(&mut form, "name");
        form.paste("Ada\nLovelace\u{1b}[2J");
        assert!(matches!(input(&form, "name"), Input::Text { text, .. } if text == "Ada Lovelace"));
    }
}
