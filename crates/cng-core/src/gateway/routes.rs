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
    /// `GET /api/keys`.
    AdminKeys,
    /// `POST /api/keys`.
    AdminKeyCreate,
    /// `GET`, `PATCH`, `DELETE /api/keys/{name}`.
    AdminKey(String),
    /// `POST /api/keys/{name}/rotate`.
    AdminKeyRotate(String),
    /// `GET /api/teams`.
    AdminTeams,
    /// `POST /api/teams`.
    AdminTeamCreate,
    /// `GET`, `DELETE /api/teams/{id}`.
    AdminTeam(String),
    /// `POST /api/teams/{id}/rotate` (an admin or the team's own token).
    AdminTeamRotate(String),
    /// `GET /api/providers`.
    AdminProviders,
    /// `PUT`, `DELETE /api/providers/{name}/key`.
    AdminProviderKey(String),
    /// `GET`, `PUT /api/config`.
    AdminConfig,
    /// `GET /api/config/export`.
    AdminConfigExport,
    /// `POST /api/config/import`.
    AdminConfigImport,
    /// `POST /api/discover`.
    AdminDiscover,
    /// `GET /api/usage`.
    AdminUsage,
    /// `GET /api/usage/reconcile`.
    AdminUsageReconcile,
    /// `GET /api/status`.
    AdminStatus,
    /// `GET /badge/{model}.svg` (the model, without `.svg`).
    Badge(String),
    /// The web panel: `/` and `/ui/{file}` (the file name).
    Ui(String),
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
            Route::Health | Route::Image(_) | Route::Badge(_) | Route::Ui(_) => Access::Public,
            Route::AdminKeys
            | Route::AdminKeyCreate
            | Route::AdminKey(_)
            | Route::AdminKeyRotate(_)
            | Route::AdminTeams
            | Route::AdminTeamCreate
            | Route::AdminTeam(_)
            | Route::AdminProviders
            | Route::AdminProviderKey(_)
            | Route::AdminConfig
            | Route::AdminConfigExport
            | Route::AdminConfigImport
            | Route::AdminDiscover
            | Route::AdminUsage
            | Route::AdminUsageReconcile
            | Route::AdminStatus => Access::Admin,
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
            Route::AdminKeys | Route::AdminKeyCreate | Route::AdminKey(_) => "admin.keys",
            Route::AdminKeyRotate(_) => "admin.keys.rotate",
            Route::AdminTeams | Route::AdminTeamCreate | Route::AdminTeam(_) => "admin.teams",
            Route::AdminTeamRotate(_) => "admin.teams.rotate",
            Route::AdminProviders | Route::AdminProviderKey(_) => "admin.providers",
            Route::AdminConfig | Route::AdminConfigExport | Route::AdminConfigImport => {
                "admin.config"
            }
            Route::AdminDiscover => "admin.discover",
            Route::AdminUsage => "admin.usage",
            Route::AdminUsageReconcile => "admin.usage.reconcile",
            Route::AdminStatus => "admin.status",
            Route::Badge(_) => "badge",
            Route::Ui(_) => "ui",
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
        ("/api/keys", _) if *method == Method::POST => (Route::AdminKeyCreate, "GET, POST"),
        ("/api/keys", _) => (Route::AdminKeys, "GET, POST"),
        ("/api/teams", _) if *method == Method::POST => (Route::AdminTeamCreate, "GET, POST"),
        ("/api/teams", _) => (Route::AdminTeams, "GET, POST"),
        (p, _) if p.starts_with("/api/teams/") => {
            let rest = &p["/api/teams/".len()..];
            match rest.strip_suffix("/rotate") {
                Some(id) if !id.is_empty() && !id.contains('/') => {
                    (Route::AdminTeamRotate(decode(id)), "POST")
                }
                _ if !rest.is_empty() && !rest.contains('/') => {
                    (Route::AdminTeam(decode(rest)), "GET, DELETE")
                }
                _ => return Match::NotFound,
            }
        }
        ("/api/providers", _) => (Route::AdminProviders, "GET"),
        (p, _) if p.starts_with("/api/providers/") => {
            match p["/api/providers/".len()..].strip_suffix("/key") {
                Some(name) if !name.is_empty() && !name.contains('/') => {
                    (Route::AdminProviderKey(decode(name)), "PUT, DELETE")
                }
                _ => return Match::NotFound,
            }
        }
        ("/api/config", _) => (Route::AdminConfig, "GET, PUT"),
        ("/api/config/export", _) => (Route::AdminConfigExport, "GET"),
        ("/api/config/import", _) => (Route::AdminConfigImport, "POST"),
        ("/api/discover", _) => (Route::AdminDiscover, "POST"),
        ("/api/usage", _) => (Route::AdminUsage, "GET"),
        ("/api/usage/reconcile", _) => (Route::AdminUsageReconcile, "GET"),
        ("/api/status", _) => (Route::AdminStatus, "GET"),
        ("/", _) => (Route::Ui("index.html".into()), "GET, HEAD"),
        (p, _) if p.starts_with("/ui/") && p.len() > "/ui/".len() => {
            (Route::Ui(p["/ui/".len()..].to_string()), "GET, HEAD")
        }
        (p, _) if p.starts_with("/api/keys/") => {
            let rest = &p["/api/keys/".len()..];
            match rest.strip_suffix("/rotate") {
                Some(name) if !name.is_empty() => (Route::AdminKeyRotate(decode(name)), "POST"),
                _ if !rest.is_empty() && !rest.contains('/') => {
                    (Route::AdminKey(decode(rest)), "GET, PATCH, DELETE")
                }
                _ => return Match::NotFound,
            }
        }
        (p, _)
            if p.starts_with("/badge/") && p.ends_with(".svg") && p.len() > "/badge/.svg".len() =>
        {
            let model = &p["/badge/".len()..p.len() - ".svg".len()];
            (Route::Badge(decode(model)), "GET, HEAD")
        }
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

/// A percent-decoded path segment (ids have `@` and `/`, which clients may encode).
fn decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
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
            Match::WrongMethod("GET, POST")
        );
        assert_eq!(
            match_route(&Method::POST, "/api/keys"),
            Match::Found(Route::AdminKeyCreate)
        );
        assert_eq!(
            match_route(&Method::PATCH, "/api/keys/ci-bot"),
            Match::Found(Route::AdminKey("ci-bot".into()))
        );
        assert_eq!(
            match_route(&Method::POST, "/api/keys/ci-bot/rotate"),
            Match::Found(Route::AdminKeyRotate("ci-bot".into()))
        );
        assert_eq!(match_route(&Method::GET, "/api/keys/a/b"), Match::NotFound);
        assert_eq!(
            match_route(&Method::GET, "/badge/@cf/meta/llama-3.1-8b-instruct.svg"),
            Match::Found(Route::Badge("@cf/meta/llama-3.1-8b-instruct".into()))
        );
        assert_eq!(
            match_route(&Method::GET, "/badge/gpt-4o.svg"),
            Match::Found(Route::Badge("gpt-4o".into()))
        );
        assert_eq!(
            match_route(&Method::GET, "/"),
            Match::Found(Route::Ui("index.html".into()))
        );
        assert_eq!(
            match_route(&Method::PUT, "/api/config"),
            Match::Found(Route::AdminConfig)
        );
        assert_eq!(match_route(&Method::GET, "/v1x/models"), Match::NotFound);
    }
}
