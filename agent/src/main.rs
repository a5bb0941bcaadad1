use actix::prelude::*;
use clap::Parser;
use drover_agent::config::Config;
use drover_agent::execute::Settings;
use drover_agent::pool::{PoolActor, Stop};
use drover_agent::runner::reaper;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    // The agent's reaper, started by the agent below (hidden from --help).
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .filter_map(|a| a.into_string().ok())
        .collect();
    if let Some((marker, agent_pid)) = reaper::parse(&args) {
        reaper::run(&marker, agent_pid);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let config = Config::parse();
    if let Err(problem) = config.validate() {
        eprintln!("drover-agent: {problem}");
        std::process::exit(2);
    }
    std::fs::create_dir_all(&config.work_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create --work-dir {}: {e}",
            config.work_dir.display()
        )
    })?;
    // From the main thread, which lives as long as the agent: the reaper's
    // PR_SET_PDEATHSIG fires when the thread that started it ends.
    let marker = drover_agent::execute::process_marker(&config.agent_id());
    let _reaper = reaper::start(&reaper::own_binary(), &marker)
        .map_err(|e| anyhow::anyhow!("cannot start the agent's reaper process: {e}"))?;
    let system = System::new();
    system.block_on(start(config))?;
    system.run()?;
    Ok(())
}

async fn start(config: Config) -> anyhow::Result<()> {
    let agent_id = config.agent_id();
    let client = drover_agent::bus::connect(&config.nats_url, &agent_id).await?;
    let settings = Arc::new(Settings {
        agent_id: agent_id.clone(),
        work_dir: config.work_dir.clone(),
        key_dir: config.key_dir.clone(),
        runner: config.runner_program(),
        keep_work_dirs: config.keep_work_dirs,
        check_host_keys: config.check_host_keys,
        stopping: AtomicBool::new(false),
    });
    tracing::info!(agent = %agent_id, pool = %config.pool, runner = %settings.runner.display(), "agent starting");
    let pool = PoolActor::new(
        settings,
        client,
        config.pool.clone(),
        config.concurrency,
        config.labels.clone(),
    )
    .with_heartbeat(std::time::Duration::from_secs(config.heartbeat_secs))
    .start();
    actix::spawn(async move {
        wait_for_signal().await;
        pool.do_send(Stop);
    });
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
