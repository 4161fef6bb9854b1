//! The `rtpengine` daemon binary.

use std::sync::Arc;

use std::path::Path;

use anyhow::Context as _;
use rtpengine::call::{self, Calls};
use rtpengine::cli::Cli;
use rtpengine::commands::Commands;
use rtpengine::config::{Config, LoadError};
use rtpengine::interfaces::Interfaces;
use rtpengine::kernel::{Kernel, KernelConfig};
use rtpengine::logging::{Destination, Logging};
use rtpengine::metrics::Metrics;
use rtpengine::net::ifaddrs;
use rtpengine::ng::templates::Templates;
use rtpengine::relay::offload::Offload;
use rtpengine::relay::poller::Poller;
use rtpengine::relay::xsk::XskRelay;
use rtpengine::rtpproxy::Rtpproxy;
use rtpengine::server::{cli, http, tcp, udp, Control};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{debug, error, info, warn};

fn main() {
    let (cfg, warnings) = match Config::load() {
        Ok(c) => c,
        // `--help`: to stdout, success.
        Err(LoadError::Display(text)) => {
            print!("{text}");
            return;
        }
        Err(LoadError::Invalid(e)) => {
            eprintln!("rtpengine: {e:#}");
            std::process::exit(1);
        }
    };
    if cfg.version {
        // Upstream's format (scripts match `Version:`), after the config
        // file loaded, as upstream; on stdout, where tools look first.
        println!("Version: {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let log_options = cfg.log_options();
    let logging = Arc::new(Logging::init(&log_options));
    for w in warnings {
        warn!("{w}");
    }
    match run(cfg, &logging) {
        Ok(Stop::Done) => {}
        Ok(Stop::Restart) => std::process::exit(EXIT_RESTART),
        Err(e) => {
            error!("{e:#}");
            // A detached daemon's parent prints it; syslog-only logging
            // before detaching needs it on the terminal; otherwise the log
            // line above is already on stderr.
            rtpengine::daemonize::failed(&format!("{e:#}"));
            if log_options.destination == Destination::Syslog {
                eprintln!("rtpengine: {e:#}");
            }
            std::process::exit(1);
        }
    }
}

/// Exit status after `SIGHUP` (upstream master exits 42 there, without
/// cleanup; here the stop is as clean as for `SIGTERM`). A supervisor that
/// restarts on failure (systemd `Restart=on-failure`) starts it again.
const EXIT_RESTART: i32 = 42;

/// How the daemon stopped.
enum Stop {
    /// `SIGTERM`, `SIGINT`, or nothing to serve (`--dump-table`).
    Done,
    /// `SIGHUP`: exit with [`EXIT_RESTART`].
    Restart,
}

fn run(cfg: Config, logging: &Arc<Logging>) -> anyhow::Result<Stop> {
    if let Some(table) = cfg.dump_table {
        print!(
            "{}",
            rtpengine::kernel::dump_from(&cfg.bpf_pin_dir, Some(table))?
        );
        return Ok(Stop::Done);
    }
    if !cfg.foreground {
        // Before any thread exists; logs go to syslog from here on (as
        // upstream, stdio points to /dev/null), and the parent waits for the
        // outcome of the startup.
        rtpengine::daemonize::detach().context("daemonizing")?;
    }
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting control runtime")?;
    // Before the pidfile exists, so no handled signal can kill the process
    // without cleanup from then on.
    let signals = {
        let _runtime = control.enter();
        Signals::new().context("installing signal handlers")?
    };
    if let Some(p) = &cfg.pidfile {
        write_pidfile(p)?;
    }
    raise_fd_limit();
    // Media runs on its own threads (see `relay::poller`): relaying uses
    // every core, a flood of media can never delay ng replies or timers, and
    // signalling never holds up a relay thread.
    let threads = cfg
        .media_num_threads
        .or(cfg.num_threads)
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let coalesce = std::time::Duration::from_micros(u64::from(cfg.media_coalesce));
    let media = Arc::new(Poller::start(threads, coalesce).context("starting media threads")?);
    let res = control.block_on(serve(&cfg, Arc::clone(&media), logging, signals));
    // The control runtime owns the calls: dropping it closes every media
    // socket (and the kernel table) while the media threads still run.
    drop(control);
    drop(media);
    if let Some(p) = &cfg.pidfile {
        let _ = std::fs::remove_file(p);
    }
    res
}

async fn serve(
    cfg: &Config,
    media: Arc<Poller>,
    logging: &Arc<Logging>,
    mut signals: Signals,
) -> anyhow::Result<Stop> {
    // Before any listener exists.
    rtpengine::server::sources::allow_only(cfg.ng_allow_from.clone());
    let interfaces = Interfaces::build(&cfg.interface_config()?, cfg.port_min, cfg.port_max)?;
    for i in interfaces.iter() {
        for a in &i.addrs {
            info!(interface = %i.name, local = %a.local, advertised = %a.advertised, "Media interface");
        }
    }
    let kernel = open_kernel(cfg, &interfaces)?;
    if let Some(k) = &kernel {
        let k = Arc::clone(k);
        rtpengine::supervise::spawn("kernel lease", move || {
            rtpengine::kernel::keep_renewing(Arc::clone(&k))
        });
    }
    let af_xdp = match &kernel {
        Some(k) if !cfg.no_af_xdp => {
            let coalesce = std::time::Duration::from_micros(u64::from(cfg.media_coalesce));
            match XskRelay::start(Arc::clone(k) as _, Arc::clone(k) as _, coalesce) {
                Ok(x) => Some(x),
                Err(e) => {
                    warn!("AF_XDP relay unavailable ({e:#}): SRTP and bundled streams are relayed through their sockets");
                    None
                }
            }
        }
        _ => None,
    };
    let steering = af_xdp.as_ref().map(XskRelay::steering);
    let offload = match &steering {
        Some(s) => Some(Arc::clone(s) as Arc<dyn Offload>),
        None => kernel.clone().map(|k| k as Arc<dyn Offload>),
    };
    let dtls =
        rtpengine::crypto::dtls::Identity::new(cfg.dtls_key(), cfg.dtls_mtu, &cfg.dtls_ciphers)
            .context("generating the DTLS certificate (--dtls-cert-cipher, --dtls-ciphers)")?;
    let calls = Arc::new(Calls::new(
        interfaces,
        cfg.call_settings(),
        offload,
        Arc::clone(&media),
        Arc::new(dtls),
    ));
    {
        let calls = Arc::clone(&calls);
        rtpengine::supervise::spawn("timer", move || call::timer::run(Arc::clone(&calls)));
    }
    let control = Control::with_templates(
        Commands::new(Arc::clone(&calls)),
        Templates::new(&cfg.template_values),
    );
    {
        let control = Arc::clone(&control);
        rtpengine::supervise::spawn("housekeeping", move || housekeeping(Arc::clone(&control)));
    }
    let persist = if cfg.redis.is_some() {
        restore_calls(cfg, &control, &calls, kernel.as_deref()).await?
    } else if !cfg.subscribe_keyspace.is_empty() {
        anyhow::bail!("--subscribe-keyspace needs --redis (where the calls are read from)");
    } else {
        None
    };
    let cli_handle = Arc::new(Cli {
        calls: Arc::clone(&calls),
        logging: Arc::clone(logging),
        control: control.stats(),
    });
    let metrics = Arc::new(Metrics {
        calls: Arc::clone(&calls),
        control: control.stats(),
        kernel: kernel.clone(),
        media,
        af_xdp: steering,
    });
    let mut servers = tokio::task::JoinSet::new();
    for a in cfg.ng_addrs()? {
        servers.spawn(udp::serve(udp::bind(a)?, Arc::clone(&control)));
    }
    if !cfg.listen_udp.is_empty() {
        let rtpproxy = Rtpproxy::new(Arc::clone(&calls));
        for a in cfg.rtpproxy_addrs()? {
            servers.spawn(udp::serve(udp::bind(a)?, Arc::clone(&rtpproxy)));
        }
    }
    let bounds = cfg.control_bounds();
    for a in cfg.tcp_ng_addrs()? {
        servers.spawn(tcp::serve(tcp::bind(a)?, Arc::clone(&control), bounds));
    }
    let origins: Arc<[String]> = cfg.http_allow_origins.clone().into();
    for a in cfg.http_addrs()? {
        let (control, cli) = (Arc::clone(&control), Arc::clone(&cli_handle));
        servers.spawn(http::serve(
            http::bind(a)?,
            control,
            cli,
            Arc::clone(&metrics),
            Arc::clone(&origins),
            bounds,
        ));
    }
    for a in cfg.cli_addrs()? {
        servers.spawn(cli::serve(cli::bind(a)?, Arc::clone(&cli_handle), bounds));
    }
    info!("Startup complete, version {}", env!("CARGO_PKG_VERSION"));
    // Every listener is bound: tell systemd (Type=notify) we are ready. A
    // no-op without $NOTIFY_SOCKET.
    notify(&[sd_notify::NotifyState::Ready]);
    rtpengine::daemonize::ready();
    tokio::select! {
        Some(r) = servers.join_next() => r.context("server task")?.map(|()| Stop::Done),
        stop = signals.stop(logging) => {
            info!("Shutting down");
            notify(&[sd_notify::NotifyState::Stopping]);
            if let Some(p) = &persist {
                p.flush(std::time::Duration::from_secs(3)).await;
            }
            // A clean stop takes this table's entries out of the kernel (the
            // program detaches when the last handle drops with the runtime).
            if let Some(k) = kernel.as_ref().filter(|k| k.keeps_flows()) {
                // The calls are in Redis: their flows carry the media while
                // the daemon restarts.
                k.retain_for_restart();
                info!(table = %k.table(), "Kernel flows kept for the restart");
            }
            if let Some(k) = kernel.as_ref().filter(|k| !k.keeps_flows()) {
                match k.flush() {
                    Ok(n) => info!(table = %k.table(), flows = n, "Kernel table flushed"),
                    Err(e) => warn!("Failed to flush kernel table: {e:#}"),
                }
            }
            Ok(stop)
        }
    }
}

/// Connects to `--redis`, restores the calls stored there (adopting the
/// kernel flows the previous process kept for them) and journals every
/// change from now on. Without Redis the daemon does not start, unless
/// `--no-redis-required` (then nothing is restored or persisted, and the
/// kept flows are removed).
async fn restore_calls(
    cfg: &Config,
    control: &Arc<Control>,
    calls: &Arc<Calls>,
    kernel: Option<&Kernel>,
) -> anyhow::Result<Option<Arc<rtpengine::persist::Persist>>> {
    use rtpengine::persist::{self, Persist, RedisTarget, Store};
    let Some(read) = &cfg.redis else {
        return Ok(None);
    };
    let read = RedisTarget::parse(read, "RTPENGINE_REDIS_AUTH_PW").context("--redis")?;
    let write = cfg
        .redis_write
        .as_deref()
        .map(|w| RedisTarget::parse(w, "RTPENGINE_REDIS_WRITE_AUTH_PW"))
        .transpose()
        .context("--redis-write")?;
    let expires = std::time::Duration::from_secs(cfg.redis_expires);
    let store = match Store::connect(&read, write.as_ref(), expires).await {
        Ok(s) => s,
        Err(e) if cfg.no_redis_required => {
            warn!("{e:#}: starting without Redis (--no-redis-required): no call is restored or persisted");
            if let Some(k) = kernel {
                k.adopt_flows(|_, _, _| false);
                k.drop_flows_at_stop();
            }
            return Ok(None);
        }
        Err(e) => {
            return Err(
                e.context("Redis is required (--redis; --no-redis-required starts without it)")
            )
        }
    };
    info!(redis = %read, "Call persistence in Redis");
    let standby = !cfg.subscribe_keyspace.is_empty();
    if standby {
        // The standby's copies bind the media address before a failover
        // brings it here.
        rtpengine::interfaces::set_freebind(true);
    }
    let persist = Persist::new(store);
    control.set_persist(Arc::clone(&persist));
    // Before the restore: a call the timer ends meanwhile is forgotten too.
    calls.set_events(persist.clone());
    persist::restore(&persist, control, calls, kernel, standby).await?;
    if standby {
        let target = match &cfg.redis_subscribe {
            Some(s) => RedisTarget::parse_subscribe(s, "RTPENGINE_REDIS_SUBSCRIBE_AUTH_PW")
                .context("--redis-subscribe")?,
            None => read,
        };
        let (p, c, k, dbs) = (
            Arc::clone(&persist),
            Arc::clone(control),
            Arc::clone(calls),
            cfg.subscribe_keyspace.clone(),
        );
        rtpengine::supervise::spawn("Redis keyspace follower", move || {
            persist::follow_keyspaces(
                Arc::clone(&p),
                Arc::clone(&c),
                Arc::clone(&k),
                target.clone(),
                dbs.clone(),
            )
        });
    }
    Ok(Some(persist))
}

/// Reports to the service manager (systemd `Type=notify`); failures are
/// logged, never fatal (the daemon works without a manager).
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!(error = %e, "Failed to notify the service manager");
    }
}

/// Opens kernel table `--table` when it is 0..63. Failure falls back to
/// userspace relaying with one loud line, or exits with `--no-fallback`.
fn open_kernel(cfg: &Config, interfaces: &Interfaces) -> anyhow::Result<Option<Arc<Kernel>>> {
    let Some(table) = cfg.kernel_table()? else {
        info!(
            "Kernel forwarding disabled (--table={}), relaying in userspace",
            cfg.table
        );
        return Ok(None);
    };
    let devices = if cfg.xdp_devices.is_empty() {
        let addrs: Vec<_> = interfaces
            .iter()
            .flat_map(|i| i.addrs.iter().map(|a| a.local))
            .collect();
        ifaddrs::devices_of(&addrs).context("listing network devices")?
    } else {
        cfg.xdp_devices.clone()
    };
    if devices.is_empty() {
        let msg = format!(
            "FAILED TO OPEN KERNEL TABLE {table} (no network device carries the --interface addresses; name them with --xdp-device)"
        );
        if cfg.no_fallback {
            error!("{msg}");
            anyhow::bail!("Userspace fallback disallowed - exiting");
        }
        error!("{msg}, KERNEL FORWARDING DISABLED");
        return Ok(None);
    }
    let kcfg = KernelConfig {
        table,
        devices: devices.clone(),
        mode: cfg.xdp_mode,
        pin_dir: cfg.bpf_pin_dir.clone(),
        lease: cfg.kernel_lease(),
        next_hop: cfg.xdp_next_hop,
        // With Redis the calls come back after a restart: their flows stay.
        keep_flows: cfg.redis.is_some(),
    };
    match Kernel::open_with(&kcfg) {
        Ok(k) => {
            for a in k.attachments() {
                info!(device = %a.device, mode = %a.mode, shared = a.shared, %table, "XDP dataplane attached");
            }
            Ok(Some(Arc::new(k)))
        }
        Err(e) if cfg.no_fallback => {
            error!("FAILED TO OPEN KERNEL TABLE {table} ({e:#})");
            anyhow::bail!("Userspace fallback disallowed - exiting")
        }
        Err(e) => {
            error!(
                devices = ?devices,
                "FAILED TO OPEN KERNEL TABLE {table} ({e:#}), KERNEL FORWARDING DISABLED"
            );
            Ok(None)
        }
    }
}

/// Writes the pid file.
fn write_pidfile(path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing pid file {}", path.display()))
}

/// Every media port is a socket: lift the soft open-files limit to the hard
/// one (a default of 1024 would cap the daemon at ~250 calls).
fn raise_fd_limit() {
    let Ok(mut lim) = rtpengine::net::open_files_limit() else {
        return;
    };
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: a valid in-pointer to a local rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            warn!(
                "Failed to raise the open files limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    info!(
        limit = lim.rlim_cur,
        "Open files limit (two per call side and media)"
    );
}

/// The signals the daemon handles, installed once at startup.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    /// Changes the log level on `SIGUSR1` (lower) and `SIGUSR2` (raise),
    /// as upstream, until a signal asks the daemon to stop.
    async fn stop(&mut self, logging: &Logging) -> Stop {
        loop {
            tokio::select! {
                _ = self.term.recv() => return Stop::Done,
                _ = self.int.recv() => return Stop::Done,
                _ = self.hup.recv() => {
                    info!("SIGHUP: stopping cleanly, then exiting with status {EXIT_RESTART}");
                    return Stop::Restart;
                }
                _ = self.usr1.recv() => {
                    let level = logging.lower();
                    warn!("SIGUSR1: log level lowered to {level}");
                }
                _ = self.usr2.recv() => {
                    let level = logging.raise();
                    warn!("SIGUSR2: log level raised to {level}");
                }
            }
        }
    }
}

/// Every 5 s: forgets due cookie-cache generations (without it a flood's
/// entries stay until the next requests rotate them out), then hands freed
/// heap memory back to the system when much of it is held
/// ([`rtpengine::heap`]), on a blocking thread: a trim holds the
/// allocator's locks while it walks the free lists.
async fn housekeeping(control: Arc<Control>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    // After a stall, one pass is enough; no burst of catch-up trims.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let trimmer = Arc::new(std::sync::Mutex::new(rtpengine::heap::Trimmer::default()));
    loop {
        tick.tick().await;
        let forgotten = control.expire_cookies();
        let t = Arc::clone(&trimmer);
        let trimmed = tokio::task::spawn_blocking(move || {
            t.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .tick()
        })
        .await;
        if let Ok(Some(r)) = trimmed {
            debug!(
                forgotten_replies = forgotten,
                released_kib = r.released >> 10,
                took_us = r.took.as_micros(),
                "Returned freed heap memory to the system"
            );
        }
    }
}
