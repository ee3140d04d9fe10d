//! `POST /v1/messages/count_tokens`: an estimate.
//!
//! cng has no tokenizer for every Workers AI model (and none of them is Claude's), so
//! the count is estimated with the rule the chat translation uses to fit prompts into
//! context windows: one token per 3 bytes of text, rounded up — a deliberate
//! over-estimate for English, so that a prompt the count says fits does fit — plus 8
//! tokens of framing per message, and 1,600 tokens per image (Anthropic's figure for
//! an image of about 1.15 megapixels, the size its API scales larger images down to).
//! Text counted: `system`, every text block, tool_use inputs and tool_result contents
//! as JSON/text, and the tool definitions as JSON.

use super::messages::MessagesRequest;
use super::request::{Block, parse_blocks, parse_tools, system_text};
use crate::error::Error;

/// Tokens counted per image.
pub const IMAGE_TOKENS: u64 = 1_600;
/// Tokens of framing counted per message.
pub const MESSAGE_TOKENS: u64 = 8;

/// The estimated input tokens of `req` (its content checked as `/v1/messages` checks it).
pub fn estimate(req: &MessagesRequest) -> Result<u64, Error> {
    let mut bytes = 0usize;
    let mut images = 0u64;
    let mut messages = 0u64;
    if let Some(s) = system_text(req.system.as_ref())? {
        bytes += s.len();
        messages += 1;
    }
    for (i, m) in req.messages.iter().enumerate() {
        if m.role != "user" && m.role != "assistant" {
            return Err(Error::invalid_param(
                format!("messages[{i}].role"),
                format!(
                    "Unknown role `{}`: messages are `user` or `assistant`.",
                    m.role
                ),
            ));
        }
        messages += 1;
        for b in parse_blocks(&format!("messages[{i}].content"), &m.content)? {
            match b {
                Block::Text(t) => bytes += t.len(),
                Block::Image(_) => images += 1,
                Block::ToolUse { name, input, .. } => bytes += name.len() + input.to_string().len(),
                Block::ToolResult {
                    content, images: n, ..
                } => {
                    bytes += content.len();
                    images += n as u64;
                }
                Block::Thinking => {}
            }
        }
    }
    for t in parse_tools(req.tools.as_deref().unwrap_or(&[]))? {
        bytes += t.name.len()
            + t.description.as_ref().map_or(0, String::len)
            + t.input_schema.to_string().len();
    }
    Ok((bytes as u64).div_ceil(3) + MESSAGE_TOKENS * messages + IMAGE_TOKENS * images)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_text_messages_images_and_tools() {
        let req: MessagesRequest = serde_json::from_value(json!({
            "model": "m",
            "system": "abcdef",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "abc"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
            ]}],
        }))
        .unwrap();
        // 9 bytes → 3 tokens, 2 messages → 16, 1 image → 1600
        assert_eq!(estimate(&req).unwrap(), 3 + 16 + 1600);
    }
}
