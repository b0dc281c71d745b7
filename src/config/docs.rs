//! The settings as documentation: the table in `docs/operations.md` and the example file
//! `shardlog.example.toml`, both rendered from the declarations so that they cannot drift
//! (the tests below compare; `SHARDLOG_BLESS=1 cargo test --lib config` rewrites them).

use super::settings;
use super::table::{Example, CONFIG_HELP};

/// The markdown table of every flag: name, default, range, meaning.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| flag / key | default | range | meaning |\n| --- | --- | --- | --- |\n");
    out += &format!("| `--config` | — | — | {CONFIG_HELP}; see `shardlog.example.toml` |\n");
    for s in settings() {
        let default = match s.default {
            super::DefaultValue::Text(t) => format!("`{t}`"),
            super::DefaultValue::Computed { shown, .. } => shown.to_string(),
        };
        let range = s.range.as_deref().unwrap_or("—");
        out += &format!("| `--{}` | {default} | {range} | {} |\n", s.flag, s.help);
    }
    out
}

/// `shardlog.example.toml`: every setting with its help, at its default unless the
/// declaration gives the example another value.
pub fn example_file() -> String {
    let mut out = String::from(
        "# shardlog configuration. Every key is also a flag (--data-dir …) and an environment\n\
         # variable (SHARDLOG_DATA_DIR …); flags win over the environment, which wins over this file.\n\
         # Sizes take units (B, KiB, MiB, GiB, TiB), durations humantime (30s, 10m, 12h, 7d).\n\
         # Generated from the declarations in src/config/mod.rs: edit those, then run\n\
         # `SHARDLOG_BLESS=1 cargo test --lib config`.\n",
    );
    for s in settings() {
        let mut comment = format!("{}.", s.help);
        if let Some(r) = &s.range {
            comment += &format!(" Range: {r}.");
        }
        let (value, commented) = match s.example {
            Example::Default => (s.shown_default(), false),
            Example::Set(v) => (v, false),
            Example::Hint(v) => (v, true),
        };
        if s.example != Example::Default {
            comment += &format!(" Default: {}.", s.shown_default());
        }
        out.push('\n');
        out += &wrap(&comment, "# ", 96);
        let value = if s.number {
            value.to_string()
        } else {
            toml::Value::String(value.to_string()).to_string()
        };
        let hash = if commented { "# " } else { "" };
        out += &format!("{hash}{} = {value}\n", s.flag);
    }
    out
}

/// `text` as lines of at most `width` characters (unless a word is longer), each starting
/// with `prefix`.
fn wrap(text: &str, prefix: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from(prefix);
    for word in text.split_whitespace() {
        if line.len() > prefix.len() && line.len() + 1 + word.len() > width {
            out += line.trim_end();
            out.push('\n');
            line = String::from(prefix);
        }
        if line.len() > prefix.len() {
            line.push(' ');
        }
        line += word;
    }
    out += &line;
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const BEGIN: &str = "<!-- settings:begin -->\n";
    const END: &str = "<!-- settings:end -->";

    fn repo_file(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    fn bless() -> bool {
        std::env::var_os("SHARDLOG_BLESS").is_some_and(|v| v == "1")
    }

    const HOW: &str = "generated from src/config/mod.rs; run `SHARDLOG_BLESS=1 cargo test --lib config` to regenerate";

    #[test]
    fn operations_md_has_the_generated_table() {
        let path = repo_file("docs/operations.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text
            .find(BEGIN)
            .expect("docs/operations.md lacks <!-- settings:begin -->")
            + BEGIN.len();
        let end = start
            + text[start..]
                .find(END)
                .expect("docs/operations.md lacks <!-- settings:end -->");
        let table = markdown_table();
        if bless() {
            std::fs::write(&path, format!("{}{table}{}", &text[..start], &text[end..])).unwrap();
        } else {
            assert_eq!(
                text[start..end],
                table,
                "docs/operations.md's table is {HOW}"
            );
        }
    }

    #[test]
    fn the_example_file_is_the_generated_one() {
        let path = repo_file("shardlog.example.toml");
        let generated = example_file();
        if bless() {
            std::fs::write(&path, &generated).unwrap();
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text, generated, "shardlog.example.toml is {HOW}");
        }
    }

    #[test]
    fn wrap_keeps_lines_short() {
        let w = wrap("aaa bbb ccc ddd", "# ", 9);
        assert_eq!(w, "# aaa bbb\n# ccc ddd\n");
        assert_eq!(wrap("x", "# ", 9), "# x\n");
    }
}
