//! The command line: `cng [serve]`, `cng keys create|list|revoke`,
//! `cng providers seal`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// cng: an OpenAI-compatible gateway for Cloudflare Workers AI.
#[derive(Debug, Parser)]
#[command(name = "cng", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `cng` alone is `cng serve`: these are its options.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default command).
    Serve(ServeArgs),
    /// Manage API keys (works whether or not the server is running).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Provider keys for the config's `providers`.
    Providers {
        #[command(subcommand)]
        command: ProvidersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Seal a provider's API key (read from stdin) under CNG_MASTER_KEY; prints the
    /// `cng1:…` value for `providers.<name>.key`.
    Seal {
        /// The provider's name in the config (`openai`, `anthropic`, ...).
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Directory for the gateway's data (keys, config).
    #[arg(long, env = "CNG_DATA", default_value = "./.cng")]
    pub data: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CNG_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub data: DataArgs,
    /// An OpenAI-compatible upstream (vLLM, Ollama, OpenAI, Cloudflare's /ai/v1) instead
    /// of the Workers AI REST API; its key comes from CNG_UPSTREAM_KEY.
    #[arg(long, env = "CNG_UPSTREAM")]
    pub upstream: Option<String>,
    /// Seconds in-flight requests (streams included) get to finish on shutdown.
    #[arg(long, env = "CNG_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "CNG_MAX_BODY_BYTES", default_value_t = cng_core::gateway::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Largest multipart upload (audio, images), in bytes.
    #[arg(long, env = "CNG_MAX_UPLOAD_BYTES", default_value_t = cng_core::gateway::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: usize,
    /// The public base URL of this gateway (for image links with `response_format: url`
    /// behind a proxy); default: taken from each request's Host.
    #[arg(long, env = "CNG_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds to wait for an upstream's first byte.
    #[arg(long, env = "CNG_FIRST_BYTE_TIMEOUT", default_value_t = 120)]
    pub first_byte_timeout: u64,
    /// Seconds an upstream stream may stay silent before it is cut.
    #[arg(long, env = "CNG_IDLE_TIMEOUT", default_value_t = 60)]
    pub idle_timeout: u64,
    /// Accept plain `http://` provider URLs to a loopback host (127.0.0.1, ::1,
    /// localhost) in the config — for tests against a local fake provider. Remote
    /// hosts always need https.
    /// `CNG_ALLOW_LOOPBACK_HTTP` takes `1`/`true`/`yes`/`on` (anything else is off).
    #[arg(
        long,
        env = "CNG_ALLOW_LOOPBACK_HTTP",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub allow_loopback_http: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints it (once) as the last line of stdout.
    Create {
        /// A unique name (letters, digits, `-_.@`).
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "client")]
        role: cng_core::auth::Role,
        /// Models or aliases the key may use, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Requests per minute (default: unlimited).
        #[arg(long)]
        rpm: Option<u32>,
        /// Days until the key expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u64>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a key by name; it stops working at once.
    Revoke {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

impl ServeArgs {
    /// A server for tests and embedding: a free loopback port, `data` as its data dir,
    /// short timeouts (first byte 2 s, idle 1 s, shutdown grace 2 s), 64 KiB JSON
    /// bodies, no upstream flag, no loopback providers. Change fields with struct
    /// update syntax: `ServeArgs { idle_timeout: 5, ..ServeArgs::local(dir) }`.
    pub fn local(data: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data: DataArgs { data: data.into() },
            upstream: None,
            shutdown_grace: 2,
            max_body_bytes: 64 * 1024,
            max_upload_bytes: cng_core::gateway::DEFAULT_MAX_UPLOAD_BYTES,
            public_url: None,
            first_byte_timeout: 2,
            idle_timeout: 1,
            allow_loopback_http: false,
        }
    }
}
