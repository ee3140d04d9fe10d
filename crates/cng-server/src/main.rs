//! `cng`: see `cng --help`.

use std::process::ExitCode;

use clap::Parser;
use cng_server::cli::{Cli, Command, ProvidersCommand};
use cng_server::{UpstreamEnv, keys, providers, serve};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cng: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Some(Command::Keys { command }) => match keys::run(command).await {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cng: {e}");
                    ExitCode::FAILURE
                }
            },
            Some(Command::Providers {
                command: ProvidersCommand::Seal { name },
            }) => match providers::seal_stdin(&name) {
                Ok(sealed) => {
                    println!("{sealed}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cng: {e}");
                    ExitCode::FAILURE
                }
            },
            Some(Command::Serve(args)) => run_server(args).await,
            None => run_server(cli.serve).await,
        }
    })
}

async fn run_server(args: cng_server::cli::ServeArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CNG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let data = serve::data_dir(&args);
    let running = match serve::start(args, UpstreamEnv::from_env()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cng: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = format!("http://{}", running.addr);
    match &running.created_admin_key {
        Some(key) => println!(
            "\n  cng is listening on {url}\n\n  A new admin key was created (stored hashed in {}).\n  It is shown only this once — save it now:\n\n      {key}\n",
            data.display()
        ),
        None => println!("cng is listening on {url}"),
    }
    let stop = running.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    running.wait().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
