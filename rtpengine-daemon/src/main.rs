//! The `rtpengine` daemon binary.

use std::sync::Arc;

use anyhow::Context as _;
use rtpengine::call::{Calls, Settings, Totals};
use rtpengine::commands::Commands;
use rtpengine::config::{self, Config};
use rtpengine::interfaces::Interfaces;
use rtpengine::ng::{control::Control, http, tcp, udp};
use tracing::{error, info, warn};

fn main() {
    let (cfg, warnings) = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rtpengine: {e:#}");
            std::process::exit(1);
        }
    };
    init_logging(cfg.log_level);
    for w in warnings {
        warn!("{w}");
    }
    if let Err(e) = run(cfg) {
        error!("{e:#}");
        eprintln!("rtpengine: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging(level: u8) {
    // syslog levels: 0-3 errors, 4 warnings, 5-6 notices/info, 7 debug.
    let filter = match level {
        0..=3 => "error",
        4 => "warn",
        5 | 6 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RTPENGINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(cfg: Config) -> anyhow::Result<()> {
    if !cfg.foreground {
        // Detach before any thread exists; keep stderr, our only log sink.
        // SAFETY: single-threaded here; daemon() forks and the parent exits.
        if unsafe { libc::daemon(0, 1) } != 0 {
            return Err(std::io::Error::last_os_error()).context("daemonizing");
        }
    }
    if let Some(p) = &cfg.pidfile {
        config::write_pidfile(p)?;
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cfg.num_threads {
        rt.worker_threads(usize::from(n));
    }
    let rt = rt.build().context("starting runtime")?;
    let res = rt.block_on(serve(&cfg));
    if let Some(p) = &cfg.pidfile {
        let _ = std::fs::remove_file(p);
    }
    res
}

async fn serve(cfg: &Config) -> anyhow::Result<()> {
    if cfg.table >= 0 {
        let msg = format!(
            "kernel forwarding (table {}) is not implemented yet, KERNEL FORWARDING DISABLED",
            cfg.table
        );
        if cfg.no_fallback {
            anyhow::bail!("{msg}; userspace fallback disallowed (--no-fallback)");
        }
        warn!("{msg}");
    }
    let interfaces = Interfaces::new(&cfg.interface_specs()?, cfg.port_min, cfg.port_max)?;
    for i in interfaces.iter() {
        for a in &i.addrs {
            info!(interface = %i.name, local = %a.local, advertised = %a.advertised, "Media interface");
        }
    }
    let calls = Arc::new(Calls::new(interfaces, Settings::from_config(cfg), None));
    let control = Control::new(Commands::new(calls));
    let timer_control = Arc::clone(&control);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let (mut last, mut last_kernel) = (Totals::default(), 0);
        loop {
            tick.tick().await;
            timer_control.commands().tick(&mut last, &mut last_kernel);
        }
    });
    let sock = udp::bind(cfg.ng_addr()?)?;
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(udp::serve(sock, Arc::clone(&control)));
    if let Some(a) = &cfg.listen_tcp_ng {
        let l = tcp::bind(config::parse_listen(a).context("invalid --listen-tcp-ng")?).await?;
        servers.spawn(tcp::serve(l, Arc::clone(&control)));
    }
    if let Some(a) = &cfg.listen_http {
        let l = http::bind(config::parse_listen(a).context("invalid --listen-http")?).await?;
        servers.spawn(http::serve(l, Arc::clone(&control)));
    }
    info!("Startup complete, version {}", env!("CARGO_PKG_VERSION"));
    tokio::select! {
        Some(r) = servers.join_next() => r.context("server task")?,
        _ = shutdown_signal() => {
            info!("Shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
