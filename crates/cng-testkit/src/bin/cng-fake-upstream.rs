//! `cng-fake-upstream [--port N] [--fixtures DIR]`: the fake Workers AI / OpenAI upstream
//! as a process, for `scripts/e2e`. Prints `listening on http://127.0.0.1:PORT` once ready,
//! then serves until killed.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cng_testkit::FakeUpstream;

#[derive(Debug, Parser)]
#[command(
    name = "cng-fake-upstream",
    about = "Fake Workers AI REST / OpenAI-compatible upstream replaying cng's fixtures"
)]
struct Args {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 0, env = "CNG_FAKE_PORT")]
    port: u16,
    /// The fixtures directory (default: the repo's fixtures/).
    #[arg(long, env = "CNG_FAKE_FIXTURES")]
    fixtures: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let dir = args.fixtures.unwrap_or_else(cng_testkit::fixtures_dir);
    let fake = match FakeUpstream::start(&dir, args.port).await {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("cng-fake-upstream: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on {}", fake.base_url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    eprintln!(
        "cng-fake-upstream: {} fixture cases from {}",
        fake.case_count(),
        dir.display()
    );
    match tokio::signal::ctrl_c().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cng-fake-upstream: waiting for ctrl-c: {e}");
            // No signal handling: serve until killed.
            std::future::pending::<ExitCode>().await
        }
    }
}
