//! The script: the steps the mock answers requests with, in order, and how it is
//! read from JSON.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::item::Item;
use crate::step::Step;

/// The steps a [`MockModel`](crate::MockModel) answers requests with, in order.
///
/// In JSON either `{"steps": [...]}` or a bare array `[...]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Script {
    /// One step per valid request, consumed in order.
    pub steps: Vec<Step>,
}

/// Why a script could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The script file could not be read.
    #[error("cannot read mock-model script {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not a valid script; the message names the step (when the
    /// text is valid JSON), and the line and column.
    #[error("invalid mock-model script {origin}: {}{source}", step_prefix(*step))]
    Parse {
        /// Where the text came from: a file path, or `(string)`.
        origin: String,
        /// The index of the step that failed to parse, if known.
        step: Option<usize>,
        /// serde's error, with line and column. Inside a step, serde reports
        /// the position where the step's object ends.
        source: serde_json::Error,
    },
    /// The script parses but a step cannot be played as written.
    #[error("invalid mock-model script {origin}: {location}: {message}")]
    Invalid {
        /// Where the text came from: a file path, or `(string)`.
        origin: String,
        /// The offending field, e.g. `steps[2].items[0]`.
        location: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ScriptError {
    /// The line of a parse error (1-based), if this is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ScriptError::Parse { source, .. } => Some(source.line()),
            ScriptError::Read { .. } | ScriptError::Invalid { .. } => None,
        }
    }

    /// The column of a parse error (1-based), if this is one.
    pub fn column(&self) -> Option<usize> {
        match self {
            ScriptError::Parse { source, .. } => Some(source.column()),
            ScriptError::Read { .. } | ScriptError::Invalid { .. } => None,
        }
    }
}

/// The wrapped JSON form, `{"steps": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedScript {
    steps: Vec<Step>,
}

impl Script {
    /// A script of these steps.
    pub fn new(steps: Vec<Step>) -> Script {
        Script { steps }
    }

    /// Parse a script from JSON text: `{"steps": [...]}` or `[...]`.
    pub fn from_json_str(text: &str) -> Result<Script, ScriptError> {
        Script::parse(text, "(string)")
    }

    /// Read and parse a JSON script file; errors name the file, and the line
    /// and column where parsing failed.
    pub fn from_file(path: &Path) -> Result<Script, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Script::parse(&text, &path.display().to_string())
    }

    /// Check that every step can be played as written (the JSON loaders do this
    /// already): no text item with both `deltas` and `chunks`, valid HTTP
    /// statuses and header names, and so on.
    pub fn validate(&self) -> Result<(), ScriptError> {
        self.validate_as("(built in code)")
    }

    fn parse(text: &str, origin: &str) -> Result<Script, ScriptError> {
        // Pick the form from the first character rather than with an untagged
        // enum, so a mistake inside a step keeps serde's precise message.
        let parsed = if text.trim_start().starts_with('[') {
            serde_json::from_str::<Vec<Step>>(text).map(Script::new)
        } else {
            serde_json::from_str::<WrappedScript>(text).map(|w| Script::new(w.steps))
        };
        let script = parsed.map_err(|source| ScriptError::Parse {
            origin: origin.to_owned(),
            step: failing_step(text),
            source,
        })?;
        script.validate_as(origin)?;
        Ok(script)
    }

    fn validate_as(&self, origin: &str) -> Result<(), ScriptError> {
        for (index, step) in self.steps.iter().enumerate() {
            if let Some((location, message)) = step_problem(step) {
                return Err(ScriptError::Invalid {
                    origin: origin.to_owned(),
                    location: format!("steps[{index}]{location}"),
                    message,
                });
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Script {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Script, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Wrapped(WrappedScript),
            Bare(Vec<Step>),
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Wrapped(wrapped) => Script::new(wrapped.steps),
            Form::Bare(steps) => Script::new(steps),
        })
    }
}

fn step_prefix(step: Option<usize>) -> String {
    step.map(|index| format!("steps[{index}]: "))
        .unwrap_or_default()
}

/// Which step fails to parse, found by parsing each one on its own. serde
/// reports errors inside a tagged enum at the end of the enclosing object,
/// which says little in a long script; the step index says more.
fn failing_step(text: &str) -> Option<usize> {
    let document: serde_json::Value = serde_json::from_str(text).ok()?;
    let steps = match &document {
        serde_json::Value::Array(steps) => steps,
        serde_json::Value::Object(object) => object.get("steps")?.as_array()?,
        _ => return None,
    };
    steps
        .iter()
        .position(|step| serde_json::from_value::<Step>(step.clone()).is_err())
}

/// The first problem in a step: the path below the step and the message.
fn step_problem(step: &Step) -> Option<(String, String)> {
    match step {
        Step::Response(response) => {
            response
                .items
                .iter()
                .enumerate()
                .find_map(|(index, item)| match item {
                    Item::Text(text) | Item::Reasoning(text) => text
                        .problem()
                        .map(|message| (format!(".items[{index}]"), message)),
                    Item::FunctionCall(_) | Item::CustomToolCall(_) => None,
                })
        }
        Step::HttpError(error) => {
            if hyper::StatusCode::from_u16(error.status).is_err() {
                return Some((
                    ".status".to_owned(),
                    format!("{} is not an HTTP status", error.status),
                ));
            }
            error.headers.iter().find_map(|(name, value)| {
                let valid = hyper::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                    && hyper::header::HeaderValue::from_str(value).is_ok();
                (!valid).then(|| {
                    (
                        format!(".headers.{name}"),
                        "not a valid HTTP header".to_owned(),
                    )
                })
            })
        }
        Step::Failed(_) | Step::Hang => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_json_forms_parse_to_the_same_script() {
        let bare = Script::from_json_str(
            r#"[{"type":"response","items":[{"type":"text","text":"hi"}]},{"type":"hang"}]"#,
        )
        .unwrap();
        let wrapped = Script::from_json_str(
            r#" {"steps":[{"type":"response","items":[{"type":"text","text":"hi"}]},{"type":"hang"}]}"#,
        )
        .unwrap();
        assert_eq!(bare, wrapped);
        assert_eq!(bare.steps.len(), 2);
        let via_serde: Script = serde_json::from_str(r#"[{"type":"hang"}]"#).unwrap();
        assert_eq!(via_serde.steps, [Step::Hang]);
    }

    #[test]
    fn a_typo_names_the_line_and_column() {
        let error =
            Script::from_json_str("{\"steps\": [\n  {\"type\": \"respons\"}\n]}").unwrap_err();
        assert_eq!(error.line(), Some(2));
        assert!(error.to_string().contains("respons"), "{error}");
    }

    #[test]
    fn unplayable_steps_are_reported_with_their_location() {
        let error = Script::from_json_str(
            r#"[{"type":"hang"},{"type":"response","items":[{"type":"text","text":"a","chunks":0}]}]"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("steps[1].items[0]"), "{error}");
        let error = Script::from_json_str(r#"[{"type":"http_error","status":1000}]"#).unwrap_err();
        assert!(error.to_string().contains("steps[0].status"), "{error}");
    }
}
