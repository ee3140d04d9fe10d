//! OpenAI's audio API: `POST /v1/audio/speech` (JSON) and
//! `POST /v1/audio/transcriptions` / `translations` (multipart uploads).

use serde::{Deserialize, Serialize};

/// The body of `POST /v1/audio/speech`.
#[derive(Debug, Clone, Deserialize)]
pub struct SpeechRequest {
    pub model: String,
    pub input: String,
    /// An OpenAI voice name (`alloy`, …) or one of the model's own speakers.
    pub voice: Option<String>,
    pub response_format: Option<String>,
    pub speed: Option<f64>,
    pub instructions: Option<String>,
    pub stream_format: Option<String>,
}

/// A transcription request, read from its multipart form.
#[derive(Debug, Clone)]
pub struct TranscriptionRequest {
    pub model: String,
    pub file: bytes::Bytes,
    pub filename: Option<String>,
    pub file_content_type: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub response_format: Option<String>,
    pub temperature: Option<f64>,
    /// `word` and/or `segment`.
    pub timestamp_granularities: Vec<String>,
    pub stream: bool,
}

/// `verbose_json`: the transcript with its timing.
#[derive(Debug, Clone, Serialize)]
pub struct VerboseTranscript {
    pub task: &'static str,
    pub language: String,
    pub duration: f64,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<VerboseSegment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Word>>,
}

/// A timed piece of the transcript.
#[derive(Debug, Clone, Serialize)]
pub struct VerboseSegment {
    pub id: usize,
    pub seek: u64,
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Whisper's token ids are not in Workers AI's answer.
    pub tokens: Vec<u32>,
    pub temperature: f64,
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

/// A timed word.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
}
