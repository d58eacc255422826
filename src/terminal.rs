//! Text from outside (AWS error messages, documents, the store, the command line) made safe
//! to print on a terminal: control characters are shown escaped, never sent raw, so a
//! newline cannot break a table and an escape sequence cannot rewrite the screen.
//!
//! Every line the CLI prints for people goes through [`escape_controls`] (or
//! [`write_line`], [`escape_controls_keeping_lines`]). JSON and YAML output carry the exact
//! data, escaped in their own syntax instead ([`escape_json_controls`]).

use std::borrow::Cow;
use std::io::Write;

/// `text` with every control character escaped: C0 (U+0000-U+001F: newline, carriage
/// return, tab and ESC among them), DEL (U+007F) and C1 (U+0080-U+009F) are written as Rust
/// writes them (`\n`, `\r`, `\t`, `\0`, `\u{1b}`, `\u{7f}`, `\u{9b}`). Everything else,
/// backslashes included, is kept as it is. Escaping twice changes nothing more.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// A message of several lines the CLI wrote itself (an error with one problem per line):
/// its line breaks are kept, every other control character is escaped.
pub fn escape_controls_keeping_lines(text: &str) -> String {
    text.split('\n')
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes one line for people: `line` escaped, then a newline.
pub fn write_line(out: &mut dyn Write, line: &str) -> std::io::Result<()> {
    out.write_all(escape_controls(line).as_bytes())?;
    out.write_all(b"\n")
}

/// JSON text with DEL and the C1 controls escaped as `\u007f`...`\u009f`, which JSON
/// encoders leave raw: the same data, no raw control character on a terminal (serde_json
/// already escapes C0). Outside strings JSON has no such characters, so every one found is
/// inside a string, where the escape means the same character.
pub fn escape_json_controls(json: String) -> String {
    if !json.chars().any(|c| ('\u{7f}'..='\u{9f}').contains(&c)) {
        return json;
    }
    let mut escaped = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            escaped.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character that must never reach a terminal raw.
    fn controls() -> impl Iterator<Item = char> {
        ('\u{0}'..='\u{1f}').chain('\u{7f}'..='\u{9f}')
    }

    #[test]
    fn every_c0_del_and_c1_character_is_escaped_and_nothing_else() {
        let all: String = controls().collect();
        let escaped = escape_controls(&all);
        assert!(!escaped.chars().any(char::is_control), "{escaped}");
        assert!(escaped.starts_with(r"\0\u{1}\u{2}"), "{escaped}");
        assert!(escaped.contains(r"\t\n\u{b}\u{c}\r"), "{escaped}");
        assert!(escaped.contains(r"\u{1b}"), "ESC: {escaped}");
        assert!(escaped.ends_with(r"\u{7f}\u{80}\u{81}\u{82}\u{83}\u{84}\u{85}\u{86}\u{87}\u{88}\u{89}\u{8a}\u{8b}\u{8c}\u{8d}\u{8e}\u{8f}\u{90}\u{91}\u{92}\u{93}\u{94}\u{95}\u{96}\u{97}\u{98}\u{99}\u{9a}\u{9b}\u{9c}\u{9d}\u{9e}\u{9f}"), "{escaped}");

        let plain = r#"d-1: "web" 100% \ été 🚀 <b>"#;
        assert!(matches!(escape_controls(plain), Cow::Borrowed(_)));
        assert_eq!(escape_controls(plain), plain);
        assert_eq!(
            escape_controls("a\u{1b}[2Jb\nc"),
            r"a\u{1b}[2Jb\nc",
            "the sequence is shown, not run"
        );
    }

    #[test]
    fn escaping_is_idempotent() {
        let once = escape_controls("x\u{1b}]0;title\u{7}\r\n\u{9b}31m").into_owned();
        assert_eq!(escape_controls(&once), once);
    }

    #[test]
    fn lines_the_cli_wrote_keep_their_breaks_and_nothing_else() {
        assert_eq!(
            escape_controls_keeping_lines("invalid:\n  a: \u{1b}[31mred\r\n  b"),
            "invalid:\n  a: \\u{1b}[31mred\\r\n  b"
        );
    }

    #[test]
    fn a_written_line_ends_with_its_only_newline() {
        let mut out = Vec::new();
        write_line(&mut out, "release/web\nfake line\u{1b}[1A").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "release/web\\nfake line\\u{1b}[1A\n"
        );
    }

    #[test]
    fn json_keeps_the_exact_data_with_no_raw_control_character() {
        let data: String = controls().collect();
        let value = serde_json::json!({ "message": data, "ok": "plain" });
        let text = escape_json_controls(serde_json::to_string_pretty(&value).unwrap());
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "only the layout's newlines: {text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }
}
