//! Output formats and terminal styling. stdout carries data (the report); progress and logs go
//! to stderr. Colour only on a terminal, and never with `NO_COLOR`, `CI` or `--no-color`.

use std::io::IsTerminal;

use owo_colors::OwoColorize;

/// What the CLI prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Text for a person.
    #[default]
    Human,
    /// Exactly one JSON document.
    Json,
    /// One JSON object per event, one per line.
    Structured,
}

/// Whether and how to colour text for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and neither `NO_COLOR`, `CI` nor `--no-color` says no.
    pub fn detect(no_color_flag: bool) -> Self {
        let env_says_no =
            ["NO_COLOR", "CI"].iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        Self { color: !no_color_flag && !env_says_no && std::io::stdout().is_terminal() }
    }

    /// No colour at all (tests, files).
    pub fn plain() -> Self {
        Self { color: false }
    }

    /// Whether colour is on.
    pub fn color(self) -> bool {
        self.color
    }

    /// A heading or the name of the thing that happened.
    pub fn strong(self, s: &str) -> String {
        if self.color { s.bold().to_string() } else { s.to_owned() }
    }

    /// Something that went well.
    pub fn good(self, s: &str) -> String {
        if self.color { s.green().bold().to_string() } else { s.to_owned() }
    }

    /// Secondary detail: paths, names.
    pub fn dim(self, s: &str) -> String {
        if self.color { s.dimmed().to_string() } else { s.to_owned() }
    }
}
