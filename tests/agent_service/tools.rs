//! Tool calls as the tool caller parses and runs them.

use agentprof::profiled;

#[derive(Debug, PartialEq, Eq)]
pub enum ToolError {
    Malformed(String),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::Malformed(call) => write!(f, "malformed tool call: {call}"),
        }
    }
}

impl std::error::Error for ToolError {}

/// `name(arg)`.
#[derive(Debug)]
pub struct ToolCall<'a> {
    pub name: &'a str,
    pub argument: &'a str,
}

#[profiled]
pub fn parse_call(input: &str) -> Result<ToolCall<'_>, ToolError> {
    let (name, rest) = input
        .split_once('(')
        .ok_or_else(|| ToolError::Malformed(input.to_owned()))?;
    let argument = rest
        .strip_suffix(')')
        .ok_or_else(|| ToolError::Malformed(input.to_owned()))?;
    Ok(ToolCall { name, argument })
}

#[profiled]
pub fn invoke(call: &ToolCall<'_>) -> String {
    format!("{}={}", call.name, call.argument.len())
}
