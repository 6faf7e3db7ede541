//! Text from the server made safe to draw: a command's output, the model's
//! words and an error message may hold escape sequences and control bytes
//! that would move the cursor, clear the screen or retitle the terminal if
//! they reached it. They are dropped (CSI and OSC sequences whole), tabs
//! become spaces, and carriage returns end what they overwrite.

/// `text` with escape sequences and control characters removed, except
/// newlines; tabs as four spaces.
pub fn clean(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return text.to_owned();
    }

    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\n' => out.push('\n'),
            '\t' => out.push_str("    "),
            '\r' => {
                // "progress\rdone" shows as "done", as on a terminal; a
                // "\r\n" line end is just the end.
                if chars.peek().is_some_and(|c| *c != '\n') {
                    let start = out.rfind('\n').map_or(0, |i| i + 1);
                    out.truncate(start);
                }
            }
            '\u{1b}' => skip_escape(&mut chars),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Skip the rest of an escape sequence whose ESC was just read.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        // CSI: parameters, then one final byte in @..~.
        Some('[') => {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
        // OSC (and DCS, APC, PM): until BEL or ESC \.
        Some(']' | 'P' | '_' | '^') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next_if_eq(&'\\');
                    break;
                }
            }
        }
        // Two-byte sequences (ESC c, ESC 7, ESC ( B's first byte…).
        Some(_) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_escape_sequences_and_controls() {
        assert_eq!(clean("\u{1b}[2J\u{1b}[1;31mred\u{1b}[0m"), "red");
        assert_eq!(clean("\u{1b}]0;evil title\u{7}ok"), "ok");
        assert_eq!(clean("\u{1b}]8;;http://x\u{1b}\\link"), "link");
        assert_eq!(clean("a\u{0}b\u{8}c"), "abc");
    }

    #[test]
    fn carriage_returns_overwrite_and_tabs_expand() {
        assert_eq!(clean("10%\r50%\r100%\nnext\r\n"), "100%\nnext\n");
        assert_eq!(clean("a\tb"), "a    b");
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(clean("plain\ntext"), "plain\ntext");
    }
}
