//! What a command prints and whether it succeeded.

/// The lines a command prints and its verdict (exit status 1 when not `ok`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Printed in order on stdout.
    pub lines: Vec<String>,
    /// Whether the command found nothing wrong.
    pub ok: bool,
}

impl Report {
    /// An empty, successful report.
    pub fn new() -> Self {
        Self {
            lines: Vec::new(),
            ok: true,
        }
    }

    /// Adds a line.
    pub fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// Adds a line and marks the report failed.
    pub fn problem(&mut self, line: impl Into<String>) {
        self.ok = false;
        self.lines.push(line.into());
    }

    /// The whole text.
    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }
}
