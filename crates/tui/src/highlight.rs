//! Code in fenced blocks, coloured by a small lexer: comments, strings,
//! numbers and the keywords of the languages a coding agent shows most. A
//! full grammar engine (syntect with its syntax dumps) would add a megabyte
//! and a dozen crates for colour a terminal shows in eight shades; this is
//! the part of it that helps a reader.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

/// How a language writes what the lexer looks for.
struct Syntax {
    line_comment: &'static [&'static str],
    keywords: &'static [&'static str],
}

const RUST: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "type", "unsafe", "use",
    "where", "while", "true", "false", "Some", "None", "Ok", "Err",
];
const PYTHON: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "if", "import", "in", "is", "lambda", "not", "or",
    "pass", "raise", "return", "try", "while", "with", "yield", "None", "True", "False",
];
const C_LIKE: &[&str] = &[
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "default",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "for",
    "func",
    "function",
    "go",
    "if",
    "import",
    "interface",
    "let",
    "new",
    "nil",
    "null",
    "package",
    "private",
    "public",
    "return",
    "static",
    "struct",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "type",
    "var",
    "void",
    "while",
    "int",
    "char",
    "async",
    "await",
    "from",
    "undefined",
    "typeof",
];
const SHELL: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "do", "done", "case", "esac", "in",
    "function", "return", "export", "local", "echo", "cd", "exit",
];

fn syntax(language: &str) -> Option<Syntax> {
    let language = language
        .split([',', ' '])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let (line_comment, keywords): (&'static [&'static str], &'static [&'static str]) =
        match language.as_str() {
            "rust" | "rs" => (&["//"], RUST),
            "python" | "py" => (&["#"], PYTHON),
            "sh" | "bash" | "shell" | "zsh" | "console" => (&["#"], SHELL),
            "js" | "javascript" | "ts" | "typescript" | "tsx" | "jsx" | "go" | "c" | "cpp"
            | "c++" | "java" | "kotlin" | "swift" | "cs" | "csharp" => (&["//"], C_LIKE),
            "toml" | "yaml" | "yml" | "ini" => (&["#"], &[]),
            "json" => (&[], &["true", "false", "null"]),
            _ => return None,
        };
    Some(Syntax {
        line_comment,
        keywords,
    })
}

const CODE: Style = Style::new().fg(Color::Gray);
const KEYWORD: Style = Style::new().fg(Color::Magenta);
const STRING: Style = Style::new().fg(Color::Green);
const NUMBER: Style = Style::new().fg(Color::Yellow);
const COMMENT: Style = Style::new()
    .fg(Color::DarkGray)
    .add_modifier(Modifier::ITALIC);

/// One line of code in `language`, as styled spans. An unknown language is
/// shown in the plain code colour.
pub fn highlight_line(language: &str, line: &str) -> Vec<Span<'static>> {
    let Some(syntax) = syntax(language) else {
        return vec![Span::styled(line.to_owned(), CODE)];
    };

    let mut spans = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut plain = String::new();
    let mut i = 0;
    let flush = |plain: &mut String, spans: &mut Vec<Span<'static>>| {
        if !plain.is_empty() {
            spans.push(Span::styled(std::mem::take(plain), CODE));
        }
    };
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect();
        if syntax.line_comment.iter().any(|c| rest.starts_with(c)) {
            flush(&mut plain, &mut spans);
            spans.push(Span::styled(rest, COMMENT));
            return spans;
        }
        let ch = chars[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            flush(&mut plain, &mut spans);
            let mut end = i + 1;
            while end < chars.len() && chars[end] != ch {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            let end = (end + 1).min(chars.len());
            spans.push(Span::styled(
                chars[i..end].iter().collect::<String>(),
                STRING,
            ));
            i = end;
            continue;
        }
        if ch.is_alphanumeric() || ch == '_' {
            let mut end = i;
            while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            let word: String = chars[i..end].iter().collect();
            let boundary = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
            if boundary && ch.is_ascii_digit() {
                flush(&mut plain, &mut spans);
                spans.push(Span::styled(word, NUMBER));
            } else if boundary && syntax.keywords.contains(&word.as_str()) {
                flush(&mut plain, &mut spans);
                spans.push(Span::styled(word, KEYWORD));
            } else {
                plain.push_str(&word);
            }
            i = end;
            continue;
        }
        plain.push(ch);
        i += 1;
    }
    flush(&mut plain, &mut spans);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_keywords_strings_numbers_and_comments() {
        let spans = highlight_line("rust", r#"let x = "a\"b" + 42; // note"#);
        let styled: Vec<(String, Style)> = spans
            .iter()
            .map(|s| (s.content.to_string(), s.style))
            .collect();
        assert_eq!(styled[0], ("let".to_owned(), KEYWORD));
        assert!(styled.contains(&(r#""a\"b""#.to_owned(), STRING)));
        assert!(styled.contains(&("42".to_owned(), NUMBER)));
        assert_eq!(styled.last().map(|s| s.1), Some(COMMENT));
        let text: String = spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, r#"let x = "a\"b" + 42; // note"#);
    }

    #[test]
    fn an_unknown_language_is_plain() {
        assert_eq!(
            highlight_line("brainfuck", "+++."),
            vec![Span::styled("+++.", CODE)]
        );
    }
}
