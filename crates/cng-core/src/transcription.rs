//! Speech to text: OpenAI's `POST /v1/audio/transcriptions` and `/translations` →
//! whisper, whisper-large-v3-turbo or Deepgram Nova → every OpenAI `response_format`.
//!
//! Each model takes audio its own way (its catalog `input`): `@cf/openai/whisper` the
//! raw bytes, whisper-large-v3-turbo JSON with the audio in base64 (plus `task`,
//! `language`, `initial_prompt`), Nova the raw bytes with their content type. Their
//! answers are read into one transcript (text, language, duration, segments, words)
//! from which `json`, `text`, `srt`, `vtt` and `verbose_json` are written. Whisper's
//! segments come from its WebVTT, v3-turbo's from its `segments`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::alias::Resolved;
use crate::backend::{InferenceRequest, Input};
use crate::catalog::{MediaInput, Task};
use crate::error::Error;
use crate::multipart::Form;
use crate::openai::audio::{TranscriptionRequest, VerboseSegment, VerboseTranscript, Word};

/// OpenAI's `response_format` values for transcripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

/// Transcribe in the spoken language, or translate into English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechTask {
    Transcribe,
    Translate,
}

/// The audio formats OpenAI accepts, recognised by their signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioKind {
    Mp3,
    Wav,
    Mp4,
    Webm,
    Ogg,
    Flac,
}

impl AudioKind {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Wav => "audio/wav",
            Self::Mp4 => "audio/mp4",
            Self::Webm => "audio/webm",
            Self::Ogg => "audio/ogg",
            Self::Flac => "audio/flac",
        }
    }
}

/// Recognises an upload by its first bytes (the file name and declared type are not
/// trusted: SDKs often send `application/octet-stream`).
pub fn audio_kind(b: &[u8]) -> Option<AudioKind> {
    let at = |i: usize, s: &[u8]| b.get(i..i + s.len()) == Some(s);
    if at(0, b"RIFF") && at(8, b"WAVE") {
        Some(AudioKind::Wav)
    } else if at(0, b"ID3") || (b.len() > 1 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0) {
        Some(AudioKind::Mp3)
    } else if at(4, b"ftyp") {
        Some(AudioKind::Mp4)
    } else if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        Some(AudioKind::Webm)
    } else if at(0, b"OggS") {
        Some(AudioKind::Ogg)
    } else if at(0, b"fLaC") {
        Some(AudioKind::Flac)
    } else {
        None
    }
}

/// Reads the multipart form of a transcription or translation.
pub fn read_form(form: &Form) -> Result<TranscriptionRequest, Error> {
    let file = form.get("file").ok_or_else(|| {
        Error::invalid_param(
            "file",
            "`file` is required: upload the audio as a file field.",
        )
    })?;
    let model = form
        .text("model")?
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| {
            Error::invalid_param("model", "`model` is required (for example `whisper-1`).")
        })?;
    let text = |k: &str| -> Result<Option<String>, Error> {
        Ok(form.text(k)?.filter(|v| !v.is_empty()).map(str::to_string))
    };
    let mut granularities = Vec::new();
    for p in form.all("timestamp_granularities") {
        let g = std::str::from_utf8(&p.data)
            .unwrap_or_default()
            .trim()
            .to_string();
        if g != "word" && g != "segment" {
            return Err(Error::invalid_param(
                "timestamp_granularities",
                format!("`timestamp_granularities` takes `word` and `segment`, not `{g}`."),
            ));
        }
        granularities.push(g);
    }
    Ok(TranscriptionRequest {
        model: model.to_string(),
        file: file.data.clone(),
        filename: file.filename.clone(),
        file_content_type: file.content_type.clone(),
        language: text("language")?,
        prompt: text("prompt")?,
        response_format: text("response_format")?,
        temperature: form.number("temperature")?,
        timestamp_granularities: granularities,
        stream: form.text("stream")? == Some("true"),
    })
}

/// What to send and how to answer.
#[derive(Debug, Clone)]
pub struct TranscriptionPlan {
    pub request: InferenceRequest,
    pub format: TranscriptFormat,
    pub task: SpeechTask,
    pub words: bool,
    pub segments: bool,
    pub dropped: Vec<&'static str>,
}

/// Plans one transcription (or translation, with `task`).
pub fn plan(
    req: &TranscriptionRequest,
    target: &Resolved,
    task: SpeechTask,
) -> Result<TranscriptionPlan, Error> {
    let m = &target.model;
    let who = target.describe();
    let format = match req.response_format.as_deref() {
        None | Some("json") => TranscriptFormat::Json,
        Some("text") => TranscriptFormat::Text,
        Some("srt") => TranscriptFormat::Srt,
        Some("verbose_json") => TranscriptFormat::VerboseJson,
        Some("vtt") => TranscriptFormat::Vtt,
        Some(other) => {
            return Err(Error::invalid_param(
                "response_format",
                format!(
                    "`response_format` must be json, text, srt, verbose_json or vtt, not `{other}`."
                ),
            ));
        }
    };
    if !req.timestamp_granularities.is_empty() && format != TranscriptFormat::VerboseJson {
        return Err(Error::invalid_param(
            "timestamp_granularities",
            "`timestamp_granularities` needs `response_format: verbose_json`.",
        ));
    }
    if req.stream {
        return Err(Error::invalid_param(
            "stream",
            format!("{who} returns the whole transcript at once; omit `stream`."),
        ));
    }
    if req.file.is_empty() {
        return Err(Error::invalid_param("file", "`file` is empty."));
    }
    let kind = audio_kind(&req.file).ok_or_else(|| {
        Error::invalid_param(
            "file",
            "`file` is not audio in a format OpenAI accepts (flac, mp3, mp4, mpeg, mpga, m4a, \
             ogg, wav or webm): its first bytes match none of them.",
        )
        .with_code("invalid_file_format")
    })?;
    let mut dropped = Vec::new();
    if req.temperature.is_some() {
        dropped.push("temperature");
    }
    let input = match m.media.input {
        Some(MediaInput::Base64) => {
            let mut obj = Map::new();
            obj.insert("audio".into(), json!(STANDARD.encode(&req.file)));
            if task == SpeechTask::Translate {
                obj.insert("task".into(), json!("translate"));
            }
            if let Some(l) = &req.language {
                obj.insert("language".into(), json!(l));
            }
            if let Some(p) = &req.prompt {
                obj.insert("initial_prompt".into(), json!(p));
            }
            Input::Json(Value::Object(obj))
        }
        Some(MediaInput::BytesOrU8Array | MediaInput::StreamContentType) => {
            if task == SpeechTask::Translate {
                return Err(Error::invalid_param(
                    "model",
                    format!(
                        "{who} cannot translate; use whisper-1 (@cf/openai/whisper-large-v3-turbo), \
                         which translates speech into English."
                    ),
                )
                .with_code("model_not_supported"));
            }
            let nova = m.media.input == Some(MediaInput::StreamContentType);
            if let Some(l) = req.language.as_deref() {
                if nova && !l.starts_with("en") {
                    // Nova's options travel as URL parameters, which cng's backends do
                    // not send: Nova would transcribe as English.
                    return Err(Error::invalid_param(
                        "language",
                        format!(
                            "{who} is called with its default language (English) only; use whisper-1 for `{l}`."
                        ),
                    ));
                }
                if !nova {
                    dropped.push("language");
                }
            }
            if req.prompt.is_some() {
                dropped.push("prompt");
            }
            Input::Bytes {
                body: req.file.clone(),
                content_type: kind.mime().to_string(),
            }
        }
        _ => {
            return Err(Error::invalid_param(
                "model",
                format!("{who} does not take uploaded audio."),
            )
            .with_code("model_not_supported"));
        }
    };
    Ok(TranscriptionPlan {
        request: InferenceRequest {
            model: m.id.clone(),
            task: Task::AutomaticSpeechRecognition,
            input,
            stream: false,
        },
        format,
        task,
        words: req.timestamp_granularities.iter().any(|g| g == "word"),
        segments: req.timestamp_granularities.is_empty()
            || req.timestamp_granularities.iter().any(|g| g == "segment"),
        dropped,
    })
}

/// One transcript, whatever model made it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub language: Option<String>,
    pub duration: Option<f64>,
    pub segments: Vec<Segment>,
    pub words: Vec<Word>,
}

/// A timed piece of a transcript.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub temperature: f64,
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn words_of(v: Option<&Value>) -> Vec<Word> {
    v.and_then(Value::as_array)
        .map(|ws| {
            ws.iter()
                .filter_map(|w| {
                    Some(Word {
                        word: w.get("word")?.as_str()?.trim().to_string(),
                        start: num(w, "start")?,
                        end: num(w, "end")?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads any model's answer into a [`Transcript`].
pub fn transcript(result: &Value) -> Result<Transcript, Error> {
    // Deepgram Nova: results.channels[0].alternatives[0].
    if let Some(alt) = result.pointer("/results/channels/0/alternatives/0") {
        let text = alt
            .get("transcript")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let words = words_of(alt.get("words"));
        let duration = result
            .pointer("/metadata/duration")
            .and_then(Value::as_f64)
            .or_else(|| words.last().map(|w| w.end));
        let language = result
            .pointer("/results/channels/0/detected_language")
            .and_then(Value::as_str)
            .map(str::to_string);
        let segments = one_segment(&text, &words);
        return Ok(Transcript {
            text,
            language,
            duration,
            segments,
            words,
        });
    }
    let text = result
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::upstream("the speech model answered without `text`"))?
        .trim()
        .to_string();
    let info = result.get("transcription_info");
    let language = info
        .and_then(|i| i.get("language"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut words = words_of(result.get("words"));
    let mut segments = Vec::new();
    if let Some(segs) = result.get("segments").and_then(Value::as_array) {
        // whisper-large-v3-turbo: segments with their words.
        for s in segs {
            segments.push(Segment {
                start: num(s, "start").unwrap_or(0.0),
                end: num(s, "end").unwrap_or(0.0),
                text: s
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                temperature: num(s, "temperature").unwrap_or(0.0),
                avg_logprob: num(s, "avg_logprob").unwrap_or(0.0),
                compression_ratio: num(s, "compression_ratio").unwrap_or(0.0),
                no_speech_prob: num(s, "no_speech_prob").unwrap_or(0.0),
            });
            words.extend(words_of(s.get("words")));
        }
    } else if let Some(vtt) = result.get("vtt").and_then(Value::as_str) {
        segments = parse_vtt(vtt);
    }
    if segments.is_empty() {
        segments = one_segment(&text, &words);
    }
    let duration = info
        .and_then(|i| num(i, "duration"))
        .or_else(|| segments.last().map(|s| s.end))
        .or_else(|| words.last().map(|w| w.end));
    Ok(Transcript {
        text,
        language,
        duration,
        segments,
        words,
    })
}

fn one_segment(text: &str, words: &[Word]) -> Vec<Segment> {
    if text.is_empty() {
        return Vec::new();
    }
    vec![Segment {
        start: words.first().map_or(0.0, |w| w.start),
        end: words.last().map_or(0.0, |w| w.end),
        text: text.to_string(),
        ..Segment::default()
    }]
}

/// The cues of a WebVTT document as segments.
pub fn parse_vtt(vtt: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut lines = vtt.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((a, b)) = line.split_once("-->") else {
            continue;
        };
        let (Some(start), Some(end)) = (vtt_time(a), vtt_time(b)) else {
            continue;
        };
        let mut text = Vec::new();
        while let Some(l) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            text.push(l.trim());
            lines.next();
        }
        out.push(Segment {
            start,
            end,
            text: text.join(" "),
            ..Segment::default()
        });
    }
    out
}

fn vtt_time(s: &str) -> Option<f64> {
    let t = s.split_whitespace().next()?.replace(',', ".");
    let parts: Vec<&str> = t.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m, s] => (
            h.parse::<f64>().ok()?,
            m.parse::<f64>().ok()?,
            s.parse::<f64>().ok()?,
        ),
        [m, s] => (0.0, m.parse::<f64>().ok()?, s.parse::<f64>().ok()?),
        _ => return None,
    };
    Some(h * 3600.0 + m * 60.0 + sec)
}

fn stamp(t: f64, sep: char) -> String {
    let ms = (t.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The answer body and its content type.
pub fn render(plan: &TranscriptionPlan, t: &Transcript) -> Result<(&'static str, Vec<u8>), Error> {
    Ok(match plan.format {
        TranscriptFormat::Json => ("application/json", to_json(&json!({ "text": t.text }))?),
        TranscriptFormat::Text => (
            "text/plain; charset=utf-8",
            format!("{}\n", t.text).into_bytes(),
        ),
        TranscriptFormat::Srt => {
            let mut s = String::new();
            for (i, seg) in t.segments.iter().enumerate() {
                s.push_str(&format!(
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    stamp(seg.start, ','),
                    stamp(seg.end, ','),
                    seg.text.trim()
                ));
            }
            ("text/plain; charset=utf-8", s.into_bytes())
        }
        TranscriptFormat::Vtt => {
            let mut s = String::from("WEBVTT\n\n");
            for seg in &t.segments {
                s.push_str(&format!(
                    "{} --> {}\n{}\n\n",
                    stamp(seg.start, '.'),
                    stamp(seg.end, '.'),
                    seg.text.trim()
                ));
            }
            ("text/vtt; charset=utf-8", s.into_bytes())
        }
        TranscriptFormat::VerboseJson => {
            let language = match plan.task {
                SpeechTask::Translate => "english".to_string(),
                SpeechTask::Transcribe => language_name(t.language.as_deref().unwrap_or("en")),
            };
            let v = VerboseTranscript {
                task: match plan.task {
                    SpeechTask::Transcribe => "transcribe",
                    SpeechTask::Translate => "translate",
                },
                language,
                duration: t.duration.unwrap_or(0.0),
                text: t.text.clone(),
                segments: plan.segments.then(|| {
                    t.segments
                        .iter()
                        .enumerate()
                        .map(|(id, s)| VerboseSegment {
                            id,
                            seek: 0,
                            start: s.start,
                            end: s.end,
                            text: s.text.clone(),
                            tokens: Vec::new(),
                            temperature: s.temperature,
                            avg_logprob: s.avg_logprob,
                            compression_ratio: s.compression_ratio,
                            no_speech_prob: s.no_speech_prob,
                        })
                        .collect()
                }),
                words: plan.words.then(|| t.words.clone()),
            };
            ("application/json", to_json(&v)?)
        }
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::internal(e.to_string()))
}

/// OpenAI's `verbose_json` names the language in English words (`english`); Workers
/// AI gives codes. Unknown codes are passed as they are.
pub fn language_name(code: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("en", "english"),
        ("es", "spanish"),
        ("fr", "french"),
        ("de", "german"),
        ("it", "italian"),
        ("pt", "portuguese"),
        ("nl", "dutch"),
        ("ru", "russian"),
        ("zh", "chinese"),
        ("ja", "japanese"),
        ("ko", "korean"),
        ("ar", "arabic"),
        ("hi", "hindi"),
        ("tr", "turkish"),
        ("pl", "polish"),
        ("uk", "ukrainian"),
        ("sv", "swedish"),
        ("da", "danish"),
        ("no", "norwegian"),
        ("fi", "finnish"),
        ("cs", "czech"),
        ("el", "greek"),
        ("he", "hebrew"),
        ("id", "indonesian"),
        ("ms", "malay"),
        ("th", "thai"),
        ("vi", "vietnamese"),
        ("ro", "romanian"),
        ("hu", "hungarian"),
        ("bg", "bulgarian"),
        ("ca", "catalan"),
        ("hr", "croatian"),
        ("sk", "slovak"),
        ("sl", "slovenian"),
        ("sr", "serbian"),
        ("ta", "tamil"),
        ("te", "telugu"),
        ("ur", "urdu"),
        ("bn", "bengali"),
        ("fa", "persian"),
        ("tl", "tagalog"),
        ("cy", "welsh"),
        ("lt", "lithuanian"),
        ("lv", "latvian"),
        ("et", "estonian"),
        ("af", "afrikaans"),
        ("sw", "swahili"),
        ("mr", "marathi"),
    ];
    let base = code
        .split(['-', '_'])
        .next()
        .unwrap_or(code)
        .to_ascii_lowercase();
    NAMES
        .iter()
        .find(|(c, _)| *c == base)
        .map_or(code.to_string(), |(_, n)| (*n).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtt_round_trip() {
        let segs = parse_vtt(
            "WEBVTT\n\n00:00.000 --> 00:01.500\nHello there.\n\n00:00:01.500 --> 00:00:03.250\nGeneral\nKenobi.\n",
        );
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[1].start, segs[1].end), (1.5, 3.25));
        assert_eq!(segs[1].text, "General Kenobi.");
        assert_eq!(stamp(3725.5, ','), "01:02:05,500");
    }

    #[test]
    fn audio_signatures() {
        assert_eq!(audio_kind(b"RIFF\0\0\0\0WAVEfmt "), Some(AudioKind::Wav));
        assert_eq!(audio_kind(b"ID3\x04"), Some(AudioKind::Mp3));
        assert_eq!(audio_kind(b"\0\0\0\x20ftypM4A "), Some(AudioKind::Mp4));
        assert_eq!(audio_kind(b"OggS\0"), Some(AudioKind::Ogg));
        assert_eq!(audio_kind(b"hello"), None);
        assert_eq!(language_name("pt-BR"), "portuguese");
    }
}
