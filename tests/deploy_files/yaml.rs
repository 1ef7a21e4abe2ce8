//! A parser for the block-style subset of YAML the manifests are written in: one document of
//! nested mappings and sequences, `|`/`|-` literal scalars, plain, single- and double-quoted
//! scalars, comments. Anything beyond (flow collections, anchors, aliases, tags, folded
//! scalars, several documents, tabs, YAML 1.1 booleans, octal-looking or float numbers) is an
//! error rather than a guess.

use serde_json::{Map, Value};

struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

pub fn parse(text: &str) -> Result<Value, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.trim_start_matches(' ');
        if content.starts_with('\t') {
            return Err(format!("line {}: a tab in the indentation", i + 1));
        }
        lines.push(Line {
            no: i + 1,
            indent: raw.len() - content.len(),
            text: content.trim_end(),
        });
    }
    let mut p = Parser { lines, at: 0 };
    let Some(first) = p.peek() else {
        return Err("an empty file".into());
    };
    if first.text == "---" || first.text.starts_with('%') {
        return Err(format!(
            "line {}: directives and document markers are outside the subset",
            first.no
        ));
    }
    let indent = first.indent;
    let value = p.block(indent)?;
    if let Some(rest) = p.peek() {
        return Err(format!("line {}: unexpected `{}`", rest.no, rest.text));
    }
    Ok(value)
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
}

fn is_meaningful(l: &Line) -> bool {
    !l.text.is_empty() && !l.text.starts_with('#')
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` or `key:` (a plain key, outside quotes).
fn split_key(text: &str) -> Option<(&str, &str)> {
    let (key, rest) = match text.find(": ") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text.strip_suffix(':')?, ""),
    };
    if key.is_empty() || key.contains(['"', '\'', '#', '{', '[', ' ']) {
        return None;
    }
    Some((key, rest.trim()))
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Option<&Line<'a>> {
        while self.at < self.lines.len() && !is_meaningful(&self.lines[self.at]) {
            self.at += 1;
        }
        self.lines.get(self.at)
    }

    fn block(&mut self, indent: usize) -> Result<Value, String> {
        let line = self.peek().ok_or("unexpected end")?;
        if line.indent != indent {
            return Err(format!("line {}: bad indentation", line.no));
        }
        if is_item(line.text) {
            self.sequence(indent)
        } else if split_key(line.text).is_some() {
            self.mapping(indent)
        } else {
            let (no, text) = (line.no, line.text);
            self.at += 1;
            scalar(text).map_err(|e| format!("line {no}: {e}"))
        }
    }

    fn sequence(&mut self, indent: usize) -> Result<Value, String> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            // A key at this column ends a sequence nested at its key's column.
            if line.indent < indent || (line.indent == indent && !is_item(line.text)) {
                break;
            }
            if line.indent > indent {
                return Err(format!(
                    "line {}: expected `- ` at column {}",
                    line.no,
                    indent + 1
                ));
            }
            let rest = line.text[1..].trim_start();
            if rest.is_empty() || rest.starts_with('#') {
                self.at += 1;
                items.push(self.nested(indent, true)?);
            } else {
                // `- key: value ...`: the rest of the line opens a block two columns in.
                let offset = line.text.len() - rest.len();
                let line = &mut self.lines[self.at];
                line.indent += offset;
                line.text = &line.text[offset..];
                let inner = line.indent;
                items.push(self.block(inner)?);
            }
        }
        Ok(Value::Array(items))
    }

    fn mapping(&mut self, indent: usize) -> Result<Value, String> {
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            let (no, text) = (line.no, line.text);
            if line.indent > indent || is_item(text) {
                return Err(format!(
                    "line {no}: expected a key at column {}",
                    indent + 1
                ));
            }
            let (key, rest) =
                split_key(text).ok_or_else(|| format!("line {no}: expected `key: value`"))?;
            self.at += 1;
            let value = if rest.is_empty() || rest.starts_with('#') {
                self.nested(indent, false)?
            } else if rest == "|" || rest == "|-" {
                self.literal(indent, rest == "|")?
            } else {
                scalar(rest).map_err(|e| format!("line {no}: {e}"))?
            };
            if map.insert(key.to_owned(), value).is_some() {
                return Err(format!("line {no}: duplicate key `{key}`"));
            }
        }
        Ok(Value::Object(map))
    }

    /// The value under `key:` or `-` on a line of its own: a deeper block, a sequence
    /// at the same column after a key, or null.
    fn nested(&mut self, indent: usize, in_sequence: bool) -> Result<Value, String> {
        match self.peek() {
            Some(l) if l.indent > indent => {
                let inner = l.indent;
                self.block(inner)
            }
            Some(l) if !in_sequence && l.indent == indent && is_item(l.text) => {
                self.sequence(indent)
            }
            _ => Ok(Value::Null),
        }
    }

    /// A `|` (clip: one final newline) or `|-` (strip) literal under a key at `indent`.
    fn literal(&mut self, indent: usize, clip: bool) -> Result<Value, String> {
        let start = self.at;
        let mut end = start;
        let mut block_indent = None;
        while end < self.lines.len() {
            let l = &self.lines[end];
            if l.text.is_empty() {
                end += 1;
                continue;
            }
            if l.indent <= indent {
                break;
            }
            block_indent.get_or_insert(l.indent);
            end += 1;
        }
        let Some(block_indent) = block_indent else {
            self.at = end;
            return Ok(Value::String(String::new()));
        };
        let mut body: Vec<String> = Vec::new();
        for l in &self.lines[start..end] {
            if l.text.is_empty() {
                body.push(String::new());
            } else if l.indent < block_indent {
                return Err(format!(
                    "line {}: less indented than its literal block",
                    l.no
                ));
            } else {
                body.push(format!("{}{}", " ".repeat(l.indent - block_indent), l.text));
            }
        }
        while body.last().is_some_and(|l| l.is_empty()) {
            body.pop();
        }
        self.at = end;
        let mut text = body.join("\n");
        if clip {
            text.push('\n');
        }
        Ok(Value::String(text))
    }
}

/// One scalar, with a trailing ` # comment` removed.
fn scalar(text: &str) -> Result<Value, String> {
    let first = text.chars().next().ok_or("an empty scalar")?;
    if first == '"' || first == '\'' {
        return quoted(text, first);
    }
    if "[]{}&*!>|%@`".contains(first) {
        return Err(format!(
            "`{text}` is outside the YAML subset (flow, anchor, tag or folded scalar)"
        ));
    }
    let plain = match text.find(" #") {
        Some(i) => text[..i].trim_end(),
        None => text,
    };
    if plain.contains(": ") || plain.ends_with(':') {
        return Err(format!("`{plain}`: a colon in a plain scalar"));
    }
    let lower = plain.to_ascii_lowercase();
    match lower.as_str() {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "null" | "~" => return Ok(Value::Null),
        "yes" | "no" | "on" | "off" | "y" | "n" => {
            return Err(format!(
                "`{plain}`: a YAML 1.1 boolean; quote it or write true/false"
            ))
        }
        _ => {}
    }
    let digits = plain.strip_prefix(['-', '+']).unwrap_or(plain);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(format!(
                "`{plain}`: octal in YAML 1.1, decimal in 1.2; write it in decimal"
            ));
        }
        return plain
            .parse::<i64>()
            .map(Value::from)
            .map_err(|e| format!("`{plain}`: {e}"));
    }
    if plain.parse::<f64>().is_ok() || lower.starts_with("0x") || lower.starts_with("0o") {
        return Err(format!(
            "`{plain}`: a float or a non-decimal number is outside the subset; quote it"
        ));
    }
    Ok(Value::String(plain.to_owned()))
}

fn quoted(text: &str, quote: char) -> Result<Value, String> {
    let mut out = String::new();
    let mut chars = text[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if quote == '\'' && text[1 + i + 1..].starts_with('\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            let rest = text[1 + i + 1..].trim_start();
            if !rest.is_empty() && !rest.starts_with('#') {
                return Err(format!("`{text}`: text after the closing quote"));
            }
            return Ok(Value::String(out));
        }
        if c == '\\' && quote == '"' {
            match chars.next().map(|(_, e)| e) {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                other => return Err(format!("`{text}`: escape {other:?} is outside the subset")),
            }
            continue;
        }
        out.push(c);
    }
    Err(format!(
        "`{text}`: no closing quote (multi-line quoted scalars are outside the subset)"
    ))
}

#[test]
fn parses_the_subset() {
    let doc = "# c\na: 1\nb:\n  - x\n  - -c\n  - k: v # note\n    n: \"q\\\"\" \nc:\n- 'it''s'\nd: |\n  one\n    two\n\n  three\n\ne: |-\n  z\nf: true\ng:\nh: 500m\n";
    let v = parse(doc).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "a": 1, "b": ["x", "-c", {"k": "v", "n": "q\""}], "c": ["it's"],
            "d": "one\n  two\n\nthree\n", "e": "z", "f": true, "g": null, "h": "500m"
        })
    );
}

#[test]
fn refuses_what_is_outside_the_subset() {
    for doc in [
        "a: [1, 2]\n",
        "a: {b: 1}\n",
        "a: &x 1\n",
        "a: *x\n",
        "a: !!str 1\n",
        "a: >\n  folded\n",
        "a: yes\n",
        "a: 0400\n",
        "a: 1.5\n",
        "a: 1\na: 2\n",
        "---\na: 1\n",
        "a:\n\tb: 1\n",
        "a: 1\n  b: 2\n",
        "a: \"open\n",
    ] {
        assert!(parse(doc).is_err(), "accepted {doc:?}: {:?}", parse(doc));
    }
}
