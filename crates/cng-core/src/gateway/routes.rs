//! The route table: every path cng answers, in one place.

use http::Method;

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    ChatCompletions,
    Completions,
    Models,
    Model(String),
    Embeddings,
    ImagesGenerations,
    ImagesEdits,
    /// `GET /img/{id}`: a generated image kept for `response_format: url`.
    Image(String),
    AudioSpeech,
    AudioTranscriptions,
    AudioTranslations,
    Moderations,
    /// cng's text translation extension (`{text, source_lang, target_lang}`).
    Translations,
    /// The OpenAI Responses API.
    Responses,
    /// The Anthropic Messages API.
    Messages,
    MessagesCountTokens,
    AdminKeys,
}

/// How a route is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Any valid key.
    Key,
    /// Admin keys only.
    Admin,
}

impl Route {
    pub fn access(&self) -> Access {
        match self {
            Route::Health | Route::Image(_) => Access::Public,
            Route::AdminKeys => Access::Admin,
            _ => Access::Key,
        }
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::ChatCompletions => "chat.completions",
            Route::Completions => "completions",
            Route::Models | Route::Model(_) => "models",
            Route::Embeddings => "embeddings",
            Route::ImagesGenerations => "images.generations",
            Route::ImagesEdits => "images.edits",
            Route::Image(_) => "img",
            Route::AudioSpeech => "audio.speech",
            Route::AudioTranscriptions => "audio.transcriptions",
            Route::AudioTranslations => "audio.translations",
            Route::Moderations => "moderations",
            Route::Translations => "translations",
            Route::Responses => "responses",
            Route::Messages => "messages",
            Route::MessagesCountTokens => "messages.count_tokens",
            Route::AdminKeys => "admin.keys",
        }
    }
}

/// The outcome of matching a request line.
#[derive(Debug, PartialEq, Eq)]
pub enum Match {
    Found(Route),
    /// The path exists, not for this method; the value is the `Allow` header.
    WrongMethod(&'static str),
    NotFound,
}

/// Matches method and path. OpenAI routes answer with or without the `/v1` prefix
/// (clients configured with a base URL without `/v1` exist in the wild); model ids
/// may contain slashes (`/v1/models/@cf/meta/llama-3.1-8b-instruct`).
pub fn match_route(method: &Method, path: &str) -> Match {
    let openai = path
        .strip_prefix("/v1")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    let (route, allow): (Route, &'static str) = match (path, openai) {
        ("/health", _) => (Route::Health, "GET, HEAD"),
        ("/api/keys", _) => (Route::AdminKeys, "GET"),
        (_, "/chat/completions") => (Route::ChatCompletions, "POST"),
        (_, "/completions") => (Route::Completions, "POST"),
        (_, "/models") => (Route::Models, "GET"),
        (_, "/embeddings") => (Route::Embeddings, "POST"),
        (_, "/images/generations") => (Route::ImagesGenerations, "POST"),
        (_, "/images/edits") => (Route::ImagesEdits, "POST"),
        (_, "/audio/speech") => (Route::AudioSpeech, "POST"),
        (_, "/audio/transcriptions") => (Route::AudioTranscriptions, "POST"),
        (_, "/audio/translations") => (Route::AudioTranslations, "POST"),
        (_, "/moderations") => (Route::Moderations, "POST"),
        (_, "/translations") => (Route::Translations, "POST"),
        (_, "/responses") => (Route::Responses, "POST"),
        (_, "/messages") => (Route::Messages, "POST"),
        (_, "/messages/count_tokens") => (Route::MessagesCountTokens, "POST"),
        (p, _) if p.starts_with("/img/") && p.len() > "/img/".len() => {
            (Route::Image(p["/img/".len()..].to_string()), "GET, HEAD")
        }
        (_, p) if p.starts_with("/models/") && p.len() > "/models/".len() => {
            // SDKs percent-encode the id (`@cf%2Fmeta%2F...`); both forms work.
            let raw = &p["/models/".len()..];
            let id = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
            (Route::Model(id.into_owned()), "GET")
        }
        _ => return Match::NotFound,
    };
    let ok = allow.split(", ").any(|m| m == method.as_str());
    if ok {
        Match::Found(route)
    } else {
        Match::WrongMethod(allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(
            match_route(&Method::POST, "/v1/chat/completions"),
            Match::Found(Route::ChatCompletions)
        );
        assert_eq!(
            match_route(&Method::POST, "/chat/completions"),
            Match::Found(Route::ChatCompletions)
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/chat/completions"),
            Match::WrongMethod("POST")
        );
        assert_eq!(
            match_route(&Method::POST, "/v1/chat/completionsXYZ"),
            Match::NotFound
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/models/@cf/meta/llama-3.1-8b-instruct"),
            Match::Found(Route::Model("@cf/meta/llama-3.1-8b-instruct".into()))
        );
        assert_eq!(
            match_route(
                &Method::GET,
                "/v1/models/%40cf%2Fmeta%2Fllama-3.1-8b-instruct"
            ),
            Match::Found(Route::Model("@cf/meta/llama-3.1-8b-instruct".into()))
        );
        assert_eq!(match_route(&Method::GET, "/v1/models/"), Match::NotFound);
        assert_eq!(
            match_route(&Method::GET, "/health"),
            Match::Found(Route::Health)
        );
        assert_eq!(
            match_route(&Method::DELETE, "/api/keys"),
            Match::WrongMethod("GET")
        );
        assert_eq!(match_route(&Method::GET, "/v1x/models"), Match::NotFound);
    }
}
