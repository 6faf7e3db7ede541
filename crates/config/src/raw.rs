//! The raw layer: the config file and the overrides read into one tree of
//! TOML values that remembers where each value came from. Nothing here knows
//! what the keys mean; [`super::check`] does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// Where a raw value came from; errors and warnings name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Origin {
    /// A line of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// A `-c key=value` override.
    Override {
        /// The override as given, `key=value`.
        text: String,
        /// Its dotted key.
        key: String,
    },
    /// A typed command-line option.
    CommandLine,
}

impl Origin {
    /// Where the value came from, as errors and warnings begin.
    pub(super) fn location(&self) -> String {
        match self {
            Origin::File { path, line } => format!("{}:{line}", path.display()),
            Origin::Override { text, .. } => format!("-c {text}"),
            Origin::CommandLine => "command line".to_owned(),
        }
    }
}

/// One raw value and where it came from.
#[derive(Debug, Clone)]
pub(super) struct RawNode {
    pub(super) origin: Origin,
    pub(super) value: RawValue,
}

/// A raw value: a table keeps an origin per key; anything else is a plain
/// TOML value (arrays included, since no setting tiller reads is an array).
#[derive(Debug, Clone)]
pub(super) enum RawValue {
    Table(RawTable),
    Leaf(toml::Value),
}

/// A table of raw values by key.
pub(super) type RawTable = BTreeMap<String, RawNode>;

/// Reads `path` into a raw table; a missing file is an empty table.
pub(super) fn read_file(path: &Path) -> Result<RawTable, ConfigError> {
    match read_text(path) {
        Ok(text) => parse_file(path, &text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(RawTable::new()),
        Err(error) => Err(ConfigError::Io {
            path: path.to_owned(),
            error,
        }),
    }
}

/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The text of the config file: a regular file (a FIFO would block the read
/// forever), of at most [`MAX_CONFIG_BYTES`], in UTF-8.
fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes; a config file is at most 1 MiB", meta.len()),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Parses the text of the config file at `path`.
pub(super) fn parse_file(path: &Path, text: &str) -> Result<RawTable, ConfigError> {
    let lines = LineIndex::new(text);
    let document = DeTable::parse(text).map_err(|error| ConfigError::Syntax {
        file: path.to_owned(),
        line: error.span().map_or(1, |span| lines.line_of(span.start)),
        message: error.message().to_owned(),
    })?;
    let source = Source::File {
        path,
        lines: &lines,
    };
    table_from_de(document.into_inner(), "", &source)
}

/// Sets `key` (dotted) to `value` as a `-c key=value` override does: the value
/// is read as a TOML value, or as a string when it is not one. Like a later
/// TOML source, it replaces what is at `key`: an inline-table value replaces
/// the whole table there.
pub(super) fn apply_override(
    root: &mut RawTable,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let text = format!("{key}={value}");
    let path: Vec<&str> = key.split('.').map(str::trim).collect();
    if path.iter().any(|segment| segment.is_empty()) {
        return Err(ConfigError::BadOverride {
            text,
            message:
                "expected key=value with a key like `model` or `model_providers.local.base_url`"
                    .to_owned(),
        });
    }

    let key = path.join(".");
    let origin = Origin::Override {
        text,
        key: key.clone(),
    };
    let value = value.trim();
    let node = match DeValue::parse(value) {
        Ok(parsed) => node_from_de(parsed, &key, &Source::Fixed(&origin))?,
        Err(_) => RawNode {
            origin,
            value: RawValue::Leaf(toml::Value::String(value.to_owned())),
        },
    };
    insert_at(root, &path, node);
    Ok(())
}

/// Sets the top-level `key` to the string `value` from a typed command-line option.
pub(super) fn apply_option(root: &mut RawTable, key: &str, value: String) {
    let node = RawNode {
        origin: Origin::CommandLine,
        value: RawValue::Leaf(toml::Value::String(value)),
    };
    root.insert(key.to_owned(), node);
}

/// Puts `node` at `path`, making tables on the way and replacing a
/// non-table value that is in the way (as a later TOML source should).
fn insert_at(table: &mut RawTable, path: &[&str], node: RawNode) {
    match path {
        [] => {}
        [last] => {
            table.insert((*last).to_owned(), node);
        }
        [first, rest @ ..] => {
            let entry = table.entry((*first).to_owned()).or_insert_with(|| RawNode {
                origin: node.origin.clone(),
                value: RawValue::Table(RawTable::new()),
            });
            match &mut entry.value {
                RawValue::Table(inner) => insert_at(inner, rest, node),
                RawValue::Leaf(_) => {
                    let origin = node.origin.clone();
                    let mut inner = RawTable::new();
                    insert_at(&mut inner, rest, node);
                    *entry = RawNode {
                        origin,
                        value: RawValue::Table(inner),
                    };
                }
            }
        }
    }
}

/// Gives the origin of a value at a byte offset of its source.
enum Source<'a> {
    /// The config file: the origin is the file and the offset's line.
    File {
        path: &'a Path,
        lines: &'a LineIndex,
    },
    /// An override: every value in it has the override's origin.
    Fixed(&'a Origin),
}

impl Source<'_> {
    fn origin_at(&self, offset: usize) -> Origin {
        match self {
            Source::File { path, lines } => Origin::File {
                path: (*path).to_owned(),
                line: lines.line_of(offset),
            },
            Source::Fixed(origin) => (*origin).clone(),
        }
    }
}

/// Byte offsets of line starts, to turn spans into line numbers.
struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let newlines = text.match_indices('\n').map(|(at, _)| at).collect();
        LineIndex { newlines }
    }

    /// The 1-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&at| at < offset) + 1
    }
}

fn table_from_de(
    table: DeTable<'_>,
    prefix: &str,
    source: &Source<'_>,
) -> Result<RawTable, ConfigError> {
    let mut raw = RawTable::new();
    for (key, value) in table {
        let key = key.into_inner().into_owned();
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        raw.insert(key, node_from_de(value, &dotted, source)?);
    }
    Ok(raw)
}

fn node_from_de(
    value: Spanned<DeValue<'_>>,
    key: &str,
    source: &Source<'_>,
) -> Result<RawNode, ConfigError> {
    let origin = source.origin_at(value.span().start);
    let value = match value.into_inner() {
        DeValue::Table(table) => RawValue::Table(table_from_de(table, key, source)?),
        other => RawValue::Leaf(
            toml_value(other).map_err(|message| ConfigError::bad_value(&origin, key, message))?,
        ),
    };
    Ok(RawNode { origin, value })
}

/// Converts a parsed value to a plain TOML value; fails on numbers out of range.
fn toml_value(value: DeValue<'_>) -> Result<toml::Value, String> {
    Ok(match value {
        DeValue::String(s) => toml::Value::String(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => return Err(format!("integer {i} is out of range")),
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) => toml::Value::Float(x),
            Err(_) => return Err(format!("float {f} is out of range")),
        },
        DeValue::Boolean(b) => toml::Value::Boolean(b),
        DeValue::Datetime(d) => toml::Value::Datetime(d),
        DeValue::Array(array) => toml::Value::Array(
            array
                .into_iter()
                .map(|item| toml_value(item.into_inner()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(table) => toml::Value::Table(
            table
                .into_iter()
                .map(|(k, v)| Ok((k.into_inner().into_owned(), toml_value(v.into_inner())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}
