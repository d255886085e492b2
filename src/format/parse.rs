//! The parser: format string → [`ItemLayout`].

use std::fmt;

use super::ItemLayout;

/// A format string that is not valid PEP 3118 / `struct` syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// The whole format string.
    pub format: String,
    /// Byte position of the problem.
    pub position: usize,
    /// What the grammar expected there.
    pub expected: String,
    /// What was found (`None` at the end of the string).
    pub found: Option<char>,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid format '{}' at position {}: expected {}, found ",
            self.format, self.position, self.expected
        )?;
        match self.found {
            Some(c) => write!(f, "'{c}'"),
            None => f.write_str("the end of the format"),
        }
    }
}

impl std::error::Error for FormatError {}

/// Parses a PEP 3118 format string into the item it describes.
pub fn parse(format: &str) -> Result<ItemLayout, FormatError> {
    // PLACEHOLDER until the full grammar lands (helper branch `format`).
    let _ = format;
    Err(FormatError {
        format: format.to_string(),
        position: 0,
        expected: "a format code".into(),
        found: format.chars().next(),
    })
}
