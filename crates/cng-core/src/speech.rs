//! Text to speech: OpenAI's `POST /v1/audio/speech` → Deepgram Aura or MeloTTS.
//!
//! Aura (`@cf/deepgram/aura-*`) answers raw audio and can encode it as OpenAI's
//! `mp3`, `opus`, `aac`, `flac`, `wav` and `pcm` (its `encoding`/`container`
//! inputs), so every `response_format` is really produced by the model. MeloTTS
//! only makes MP3: any other format is refused rather than mislabelled. Neither model
//! has a speed control, so `speed` other than 1 is refused. OpenAI voice names are
//! mapped onto each model's speakers (a fixed table, chosen by cng); a model's own
//! speaker names work too.

use serde_json::{Map, Value, json};

use crate::alias::Resolved;
use crate::backend::{InferenceRequest, Input};
use crate::catalog::{MediaOutput, Task};
use crate::error::Error;
use crate::openai::audio::SpeechRequest;

/// OpenAI's limit on `input`.
pub const MAX_INPUT_CHARS: usize = 4096;

/// OpenAI's `response_format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Mp3,
    Opus,
    Aac,
    Flac,
    Wav,
    Pcm,
}

impl AudioFormat {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mp3" => Self::Mp3,
            "opus" => Self::Opus,
            "aac" => Self::Aac,
            "flac" => Self::Flac,
            "wav" => Self::Wav,
            "pcm" => Self::Pcm,
            _ => return None,
        })
    }

    /// The media type of the answer.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Opus => "audio/ogg",
            Self::Aac => "audio/aac",
            Self::Flac => "audio/flac",
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Opus => "opus",
            Self::Aac => "aac",
            Self::Flac => "flac",
            Self::Wav => "wav",
            Self::Pcm => "pcm",
        }
    }
}

/// OpenAI's voices, in the order of the mapping tables below.
pub const OPENAI_VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];
const AURA_1: [&str; 13] = [
    "luna", "orion", "orpheus", "hera", "arcas", "angus", "zeus", "asteria", "athena", "stella",
    "perseus", "luna", "helios",
];
const AURA_2_EN: [&str; 13] = [
    "luna", "orion", "apollo", "cora", "arcas", "draco", "zeus", "asteria", "athena", "aurora",
    "hermes", "thalia", "atlas",
];
const AURA_2_ES: [&str; 13] = [
    "celeste", "alvaro", "nestor", "carina", "sirio", "aquila", "javier", "diana", "selena",
    "estrella", "nestor", "carina", "javier",
];

/// What to ask the model and what the client gets.
#[derive(Debug, Clone)]
pub struct SpeechPlan {
    pub request: InferenceRequest,
    pub format: AudioFormat,
    pub dropped: Vec<&'static str>,
}

/// Plans one speech request.
pub fn plan(req: &SpeechRequest, target: &Resolved) -> Result<SpeechPlan, Error> {
    let m = &target.model;
    let who = target.describe();
    if req.input.trim().is_empty() {
        return Err(Error::invalid_param(
            "input",
            "`input` is empty: send the text to speak.",
        ));
    }
    if req.input.chars().count() > MAX_INPUT_CHARS {
        return Err(Error::invalid_param(
            "input",
            format!("`input` is over {MAX_INPUT_CHARS} characters; split the text."),
        ));
    }
    let format = match req.response_format.as_deref() {
        None => AudioFormat::Mp3,
        Some(f) => AudioFormat::parse(f).ok_or_else(|| {
            Error::invalid_param(
                "response_format",
                format!("`response_format` must be mp3, opus, aac, flac, wav or pcm, not `{f}`."),
            )
        })?,
    };
    if let Some(speed) = req.speed {
        if !(0.25..=4.0).contains(&speed) {
            return Err(Error::invalid_param(
                "speed",
                "`speed` must be between 0.25 and 4.0.",
            ));
        }
        if (speed - 1.0).abs() > f64::EPSILON {
            return Err(Error::invalid_param(
                "speed",
                format!("{who} has no speed control; omit `speed` (or send 1.0)."),
            ));
        }
    }
    if req.stream_format.as_deref().is_some_and(|f| f != "audio") {
        return Err(Error::invalid_param(
            "stream_format",
            "Only `stream_format: audio` is available: the audio bytes are streamed as they come.",
        ));
    }
    let mut dropped = Vec::new();
    if req.instructions.is_some() {
        dropped.push("instructions");
    }
    let input = match m.media.output {
        Some(MediaOutput::Mp3Bytes) => aura_input(req, target, format)?,
        Some(MediaOutput::Base64JsonOrBytes) => melo_input(req, target, format)?,
        _ => {
            return Err(Error::invalid_param(
                "model",
                format!("{who} is not a speech model cng knows how to call."),
            )
            .with_code("model_not_supported"));
        }
    };
    Ok(SpeechPlan {
        request: InferenceRequest {
            model: m.id.clone(),
            task: Task::TextToSpeech,
            input: Input::Json(input),
            stream: false,
        },
        format,
        dropped,
    })
}

fn aura_input(req: &SpeechRequest, target: &Resolved, format: AudioFormat) -> Result<Value, Error> {
    let m = &target.model;
    let mut obj = Map::new();
    obj.insert("text".into(), json!(req.input));
    if let Some(voice) = req.voice.as_deref() {
        let table = if m.id.ends_with("aura-1") {
            &AURA_1
        } else if m.id.ends_with("aura-2-es") {
            &AURA_2_ES
        } else {
            &AURA_2_EN
        };
        let speaker = if m.media.voices.iter().any(|v| v == voice) {
            voice.to_string()
        } else if let Some(i) = OPENAI_VOICES.iter().position(|v| *v == voice) {
            table[i].to_string()
        } else {
            return Err(Error::invalid_param(
                "voice",
                format!(
                    "{} has no voice `{voice}`; use an OpenAI voice ({}) or one of its speakers ({}).",
                    target.describe(),
                    OPENAI_VOICES.join(", "),
                    m.media.voices.join(", ")
                ),
            ));
        };
        obj.insert("speaker".into(), json!(speaker));
    }
    let (encoding, container) = match format {
        AudioFormat::Mp3 => ("mp3", None),
        AudioFormat::Opus => ("opus", Some("ogg")),
        AudioFormat::Aac => ("aac", None),
        AudioFormat::Flac => ("flac", None),
        AudioFormat::Wav => ("linear16", Some("wav")),
        AudioFormat::Pcm => ("linear16", Some("none")),
    };
    obj.insert("encoding".into(), json!(encoding));
    if let Some(c) = container {
        obj.insert("container".into(), json!(c));
    }
    if format == AudioFormat::Pcm {
        // OpenAI's pcm is 24 kHz, 16-bit signed little-endian.
        obj.insert("sample_rate".into(), json!(24000));
    }
    Ok(Value::Object(obj))
}

fn melo_input(req: &SpeechRequest, target: &Resolved, format: AudioFormat) -> Result<Value, Error> {
    if format != AudioFormat::Mp3 {
        return Err(Error::invalid_param(
            "response_format",
            format!(
                "{} makes MP3 only and cng does not transcode audio; ask for `mp3`, or use \
                 tts-1 (@cf/deepgram/aura-2-en), which makes {}.",
                target.describe(),
                format.name()
            ),
        ));
    }
    let mut obj = Map::new();
    obj.insert("prompt".into(), json!(req.input));
    match req.voice.as_deref() {
        // MeloTTS has no speakers, only languages: OpenAI voices speak its default
        // (English); a language code picks the language.
        None => {}
        Some(v) if OPENAI_VOICES.contains(&v) => {}
        Some(v) if v.len() == 2 && v.bytes().all(|b| b.is_ascii_lowercase()) => {
            obj.insert("lang".into(), json!(v));
        }
        Some(v) => {
            return Err(Error::invalid_param(
                "voice",
                format!(
                    "{} takes an OpenAI voice (spoken in English) or a language code such as \
                     `fr` as `voice`, not `{v}`.",
                    target.describe()
                ),
            ));
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_tables_cover_every_openai_voice() {
        assert_eq!(AURA_1.len(), OPENAI_VOICES.len());
        assert_eq!(AURA_2_EN.len(), OPENAI_VOICES.len());
        assert_eq!(AURA_2_ES.len(), OPENAI_VOICES.len());
        let cat = crate::catalog::Catalog::builtin();
        for (id, table) in [
            ("@cf/deepgram/aura-1", &AURA_1),
            ("@cf/deepgram/aura-2-en", &AURA_2_EN),
            ("@cf/deepgram/aura-2-es", &AURA_2_ES),
        ] {
            let m = cat.get(id).unwrap();
            for v in table.iter() {
                assert!(
                    m.media.voices.iter().any(|s| s == v),
                    "{id} has no speaker {v}"
                );
            }
        }
    }
}
