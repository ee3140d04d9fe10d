//! # cng-core
//!
//! The pure core of cng, an OpenAI-compatible gateway for Cloudflare Workers AI.
//!
//! This crate is a deterministic implementation of the gateway's logic. It contains
//! no networking code, no async runtime and no platform crate, and it does not read
//! the clock or a random source: hosts inject a [`backend::Backend`] (how to run an
//! inference), a [`ids::Clock`] and an [`ids::IdSource`]. The Cloudflare Worker, the
//! native `cng` server and any Rust service that embeds cng call the same code, and
//! everything a client can observe is tested once, natively, against fixtures.
//!
//! ## Translating a chat request
//!
//! ```
//! use cng_core::alias::AliasTable;
//! use cng_core::catalog::Catalog;
//! use cng_core::chat;
//! use cng_core::ids::{FixedClock, SequentialIds};
//! use cng_core::openai::{chat::ChatRequest, parse_json};
//! use cng_core::backend::Input;
//!
//! let body = br#"{"model": "gpt-4o-mini", "messages": [
//!     {"role": "developer", "content": "Be brief."},
//!     {"role": "user", "content": "Hi!"}]}"#;
//! let req = parse_json::<ChatRequest>(body)?.value;
//!
//! // Resolve the alias and translate for that model's schema.
//! let target = AliasTable::default().resolve(&req.model, Catalog::builtin())?;
//! let plan = chat::plan(&req, &target, &SequentialIds::default(), &FixedClock(1_700_000_000))?;
//! assert_eq!(plan.request.model, "@cf/meta/llama-3.1-8b-instruct-fast");
//! let Input::Json(input) = &plan.request.input else { unreachable!() };
//! assert_eq!(input["messages"][0]["role"], "system"); // developer → system
//!
//! // What Workers AI answered (legacy schema) → an OpenAI chat.completion.
//! let upstream = serde_json::json!({"response": "Hello!", "usage":
//!     {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}});
//! let completion = chat::complete(&plan.context, &upstream)?;
//! assert_eq!(completion.model, "gpt-4o-mini"); // echoes what the client asked for
//! assert_eq!(completion.choices[0].message.content.as_deref(), Some("Hello!"));
//!
//! // A stream, fed in whatever pieces the network delivers.
//! let mut t = chat::StreamTranscoder::new(plan.context.clone());
//! let mut sse = t.push(b"data: {\"response\":\"Hel\"}\n\ndata: {\"resp");
//! sse.extend(t.push(b"onse\":\"lo!\"}\n\ndata: [DONE]\n\n"));
//! sse.extend(t.finish());
//! let text = String::from_utf8(sse).unwrap();
//! assert!(text.contains(r#""content":"Hel""#) && text.ends_with("data: [DONE]\n\n"));
//! # Ok::<(), cng_core::error::Error>(())
//! ```

#[cfg(feature = "access")]
pub mod access;
pub mod alias;
pub mod anthropic;
pub mod auth;
pub mod backend;
pub mod catalog;
pub mod chat;
pub mod config;
pub mod embeddings;
pub mod error;
pub mod gateway;
pub mod ids;
pub mod image_store;
pub mod images;
pub mod moderation;
pub mod multipart;
pub mod openai;
pub mod responses;
pub mod routing;
pub mod speech;
pub mod sse;
pub mod store;
pub mod teams;
pub mod transcription;
pub mod translation;
pub mod usage;
pub mod workers_ai;

pub use error::{Error, ErrorKind};
pub use gateway::{Body, Gateway, GatewayConfig, RequestLog, Services};
