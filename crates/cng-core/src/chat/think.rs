//! Separating a model's chain of thought (`<think>…</think>` in its text) from its
//! answer, whole or incrementally.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Splits a whole text into (reasoning, answer).
///
/// `open_implied`: the model's chat template already opened the tag (DeepSeek-R1
/// distills and QwQ often print only `…</think>answer`), so text before a lone
/// `</think>` is reasoning. Without a closing tag such a model's text is all answer.
pub fn split(text: &str, open_implied: bool) -> (Option<String>, String) {
    let trimmed = text.trim_start();
    if let Some(after) = trimmed.strip_prefix(OPEN) {
        return match after.find(CLOSE) {
            Some(i) => (
                non_empty(after[..i].trim()),
                after[i + CLOSE.len()..].trim_start().to_string(),
            ),
            // Cut off while thinking (finish_reason length): no answer yet.
            None => (non_empty(after.trim()), String::new()),
        };
    }
    if open_implied {
        if let Some(i) = text.find(CLOSE) {
            return (
                non_empty(text[..i].trim()),
                text[i + CLOSE.len()..].trim_start().to_string(),
            );
        }
    }
    (None, text.to_string())
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Where the incremental splitter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At the start: whitespace so far; waiting to see whether `<think>` comes.
    Start,
    Thinking,
    Answer,
}

/// Incremental splitter for streams: feed text deltas, get (reasoning, answer) deltas.
///
/// A tag split across deltas (`<thi` + `nk>`) is held back until it is decided, so
/// no tag fragment ever reaches the client; at most `</think>`'s length is held.
#[derive(Debug, Clone)]
pub struct ThinkSplitter {
    mode: Mode,
    /// Text before a `</think>` is reasoning even without `<think>`.
    open_implied: bool,
    held: String,
    /// Strip whitespace at the start of the answer (after `</think>`).
    trim_answer_start: bool,
}

/// One step of output: text for `reasoning_content` and text for `content`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Split {
    pub reasoning: String,
    pub answer: String,
}

impl ThinkSplitter {
    /// `open_implied` as in [`split`]: the stream starts inside the thinking block.
    pub fn new(open_implied: bool) -> Self {
        Self {
            mode: Mode::Start,
            open_implied,
            held: String::new(),
            trim_answer_start: false,
        }
    }

    /// Feeds a delta.
    pub fn push(&mut self, delta: &str) -> Split {
        let mut out = Split::default();
        self.held.push_str(delta);
        loop {
            match self.mode {
                Mode::Start => {
                    let t = self.held.trim_start();
                    if t.is_empty() {
                        break;
                    }
                    if let Some(rest) = t.strip_prefix(OPEN) {
                        self.held = rest.to_string();
                        self.mode = Mode::Thinking;
                        continue;
                    }
                    if OPEN.starts_with(t) {
                        break; // could still become "<think>"
                    }
                    self.mode = if self.open_implied {
                        Mode::Thinking
                    } else {
                        Mode::Answer
                    };
                }
                Mode::Thinking => {
                    if let Some(i) = self.held.find(CLOSE) {
                        out.reasoning.push_str(&self.held[..i]);
                        self.held.drain(..i + CLOSE.len());
                        self.mode = Mode::Answer;
                        self.trim_answer_start = true;
                        continue;
                    }
                    let keep = partial_suffix(&self.held, CLOSE);
                    let emit = self.held.len() - keep;
                    out.reasoning.push_str(&self.held[..emit]);
                    self.held.drain(..emit);
                    break;
                }
                Mode::Answer => {
                    let mut text = std::mem::take(&mut self.held);
                    if self.trim_answer_start {
                        let t = text.trim_start();
                        if t.is_empty() {
                            break;
                        }
                        text = t.to_string();
                        self.trim_answer_start = false;
                    }
                    out.answer.push_str(&text);
                    break;
                }
            }
        }
        out
    }

    /// Ends the text: whatever is held is emitted as what it most likely is.
    pub fn finish(&mut self) -> Split {
        let held = std::mem::take(&mut self.held);
        let mut out = Split::default();
        match self.mode {
            Mode::Thinking => out.reasoning = held,
            Mode::Start if self.open_implied => out.reasoning = held,
            Mode::Start | Mode::Answer => {
                if !(self.trim_answer_start && held.trim().is_empty()) {
                    out.answer = held;
                }
            }
        }
        out
    }
}

/// Length of the longest suffix of `s` that is a proper prefix of `tag`.
fn partial_suffix(s: &str, tag: &str) -> usize {
    (1..tag.len().min(s.len() + 1))
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_text() {
        assert_eq!(
            split("<think>hmm</think>\n\nYes.", false),
            (Some("hmm".into()), "Yes.".into())
        );
        assert_eq!(
            split("hmm</think>Yes.", true),
            (Some("hmm".into()), "Yes.".into())
        );
        assert_eq!(
            split("hmm</think>Yes.", false),
            (None, "hmm</think>Yes.".into())
        );
        assert_eq!(split("Plain.", true), (None, "Plain.".into()));
        assert_eq!(
            split("<think>cut", false),
            (Some("cut".into()), String::new())
        );
    }

    fn run(chunks: &[&str], implied: bool) -> Split {
        let mut s = ThinkSplitter::new(implied);
        let mut all = Split::default();
        for c in chunks {
            let o = s.push(c);
            all.reasoning.push_str(&o.reasoning);
            all.answer.push_str(&o.answer);
        }
        let o = s.finish();
        all.reasoning.push_str(&o.reasoning);
        all.answer.push_str(&o.answer);
        all
    }

    #[test]
    fn every_split_point_gives_the_whole_text_answer() {
        for (text, implied) in [
            ("<think>a < b</think>\n\nAnswer <b>", false),
            ("  <think>x</think>y", false),
            ("r</thi>nk</think>Answer", true),
            ("\n<think>\nr</think>\n\nAnswer", true),
            ("no tags at all", false),
            ("<thin", false),
            ("é<think>ü</think>ö", false),
        ] {
            let (r, a) = split(text, implied);
            let whole = run(&[text], implied);
            assert_eq!(
                whole.reasoning.trim(),
                r.clone().unwrap_or_default(),
                "{text}"
            );
            for i in 0..=text.len() {
                if !text.is_char_boundary(i) {
                    continue;
                }
                let got = run(&[&text[..i], &text[i..]], implied);
                assert_eq!(got, whole, "{text} split at {i}");
            }
            assert_eq!(whole.answer.trim(), a.trim(), "{text}");
        }
    }
}
