//! The report's HTML pieces: the table as `render` writes it in Markdown (tables, the published
//! numbers, the captions) turned into HTML, and text escaping. `dsma report` assembles the page.

use std::fmt::Write as _;

/// `s` with `&`, `<`, `>` and `"` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Markdown as [`crate::runner::report::render`] writes it: runs of `|` lines become tables (the
/// line after the first is the header rule), other non-empty lines paragraphs (indented ones
/// list items). The n-th table gets the id `{id}` (first) or `{id}-{n}`.
pub fn markdown_to_html(md: &str, id: &str) -> String {
    let mut out = String::new();
    let mut table: Vec<&str> = Vec::new();
    let mut tables = 0;
    let mut flush = |table: &mut Vec<&str>, out: &mut String| {
        if table.is_empty() {
            return;
        }
        let tid = if tables == 0 {
            id.to_string()
        } else {
            format!("{id}-{tables}")
        };
        tables += 1;
        out.push_str(&table_html(table, &tid));
        table.clear();
    };
    for line in md.lines() {
        if line.trim_start().starts_with('|') {
            table.push(line.trim());
            continue;
        }
        flush(&mut table, &mut out);
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let tag = if line.starts_with("  ") {
            "p class=\"item\""
        } else {
            "p"
        };
        let _ = writeln!(out, "<{tag}>{}</p>", inline_code(&escape(text)));
    }
    flush(&mut table, &mut out);
    out
}

/// `` `x` `` spans as `<code>x</code>` (an unpaired backtick stays as it is).
fn inline_code(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return text.to_string();
    }
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{p}</code>");
        } else {
            out.push_str(p);
        }
    }
    out
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| escape(c.trim())).collect()
}

/// One Markdown table (header, rule, body lines) as an HTML table.
fn table_html(lines: &[&str], id: &str) -> String {
    let mut out = format!("<table id=\"{}\">\n<thead><tr>", escape(id));
    for c in cells(lines[0]) {
        let _ = write!(out, "<th>{c}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for line in lines.iter().skip(2) {
        out.push_str("<tr>");
        for (i, c) in cells(line).into_iter().enumerate() {
            let tag = if i == 0 { "th" } else { "td" };
            let _ = write!(out, "<{tag}>{c}</{tag}>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_markdown_table_and_its_captions_become_html() {
        let md = "| Method | WT |\n|---|---|\n| a<b | 1.00 |\n\nPaired test against `a`:\n  a on X: p = 0.5\n";
        let html = markdown_to_html(md, "t");
        assert_eq!(
            html,
            "<table id=\"t\">\n<thead><tr><th>Method</th><th>WT</th></tr></thead>\n<tbody>\n\
             <tr><th>a&lt;b</th><td>1.00</td></tr>\n</tbody></table>\n\
             <p>Paired test against <code>a</code>:</p>\n<p class=\"item\">a on X: p = 0.5</p>\n"
        );
        let two = markdown_to_html("| A |\n|---|\n| 1 |\n\n| B |\n|---|\n| 2 |\n", "x");
        assert!(
            two.contains("id=\"x\"") && two.contains("id=\"x-1\""),
            "{two}"
        );
        assert_eq!(escape("\"&\""), "&quot;&amp;&quot;");
        assert_eq!(inline_code("one ` tick"), "one ` tick");
    }
}
