//! `apex-loadtest webhooks`: how fast the gateway answers signed webhook deliveries at a
//! fixed rate (open loop), against `GET /livez` at the same rate in the same run (the
//! gateway's floor: routing, middleware, the HTTP stack).
//!
//! The run starts a gateway process of its own (the `apex-gateway` beside this binary) on
//! 127.0.0.1, in front of the running stack's Redis, PostgreSQL and Temporal, with a fresh
//! Stripe secret and a task queue no worker polls: each delivery is verified, recorded
//! (Redis and `webhook_events`) and its workflow started, which is everything the request
//! path does; the ingestions themselves are not run (that is `ingest`'s and `sustain`'s
//! job), and the run terminates its workflows when it ends. Bounded in time and count.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ring::hmac;

use crate::report::percentiles;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WebhookArgs {
    /// Requests started per second, in each phase.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds each phase lasts (at most 120).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The gateway binary (default: `apex-gateway` beside this one).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// The port the run's gateway listens on (127.0.0.1).
    #[arg(long, default_value_t = 18_080)]
    port: u16,
}

/// Kills the gateway when the run ends, however it ends.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One phase's answers.
struct Phase {
    name: &'static str,
    latencies: Vec<Duration>,
    ok: usize,
    other: std::collections::BTreeMap<u16, usize>,
    elapsed: Duration,
}

/// Exits non-zero when a request was not answered 2xx (never for a latency).
pub(crate) async fn run(args: WebhookArgs) -> anyhow::Result<bool> {
    if !(1.0..=2000.0).contains(&args.rate) || !(1..=120).contains(&args.seconds) {
        bail!("--rate must be 1–2000 and --seconds 1–120");
    }
    let bin = match &args.gateway_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary's directory")?
            .join("apex-gateway"),
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let queue = format!("apex-bench-webhooks-{run}");
    let secret = format!("whsec_bench_{run}");
    let dir = std::env::temp_dir().join(format!("apex-bench-webhooks-{run}"));
    std::fs::create_dir_all(&dir)?;
    // A source of the run's own (Stripe's scheme), so no other gateway of the stack starts
    // its events.
    let source = format!("bench-{}", &run[..12]);
    std::fs::write(dir.join(&source), &secret)?;
    // A source name is a map key: a settings file says it (the environment cannot).
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!("[webhooks.schemes]\n\"{source}\" = \"stripe\"\n"),
    )?;
    let url = format!("http://127.0.0.1:{}", args.port);
    let child = Command::new(&bin)
        .env(
            "APEX_GATEWAY__LISTEN_ADDR",
            format!("127.0.0.1:{}", args.port),
        )
        .env("APEX_GATEWAY__METRICS_ADDR", "")
        .env("APEX_GATEWAY__TEMPORAL__TASK_QUEUE", &queue)
        .env("APEX_GATEWAY__TEMPORAL__ROLLOUT", "100")
        .env(
            "APEX_GATEWAY__ROLLOUT_KEY",
            format!("apex:bench:rollout:{run}"),
        )
        .env("APEX_GATEWAY__MAX_IN_FLIGHT", "1000000")
        .env("APEX_GATEWAY__WEBHOOKS__SECRETS_DIR", &dir)
        .env(
            format!("APEX_GATEWAY__WEBHOOKS__SCHEMES__{}", source.to_uppercase()),
            "stripe",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (build it: cargo build -p apex-gateway)",
                bin.display()
            )
        })?;
    let _gateway = Gateway(child);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .build()?;
    wait_ready(&http, &url).await?;
    println!(
        "apex-loadtest webhooks: {} requests/s for {} s per phase against a gateway of its own at {url} (workflows on task queue {queue}, not run)",
        args.rate, args.seconds
    );
    let livez = phase("GET /livez (baseline)", &args, |_| {
        http.get(format!("{url}/livez"))
    })
    .await;
    let stripe = phase("POST /v1/webhooks/<source>", &args, |i| {
        let body = format!(
            r#"{{"id":"evt_bench_{run}_{i}","object":"event","type":"invoice.paid","data":{{"object":{{"object":"invoice","number":"INV-{i}","customer_name":"Harbor Point Beverages","amount_paid":245000,"currency":"usd"}}}}}}"#
        );
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
        http.post(format!("{url}/v1/webhooks/{source}"))
            .header("stripe-signature", format!("t={t},v1={}", hex::encode(tag)))
            .header("content-type", "application/json")
            .body(body)
    })
    .await;
    print(&[&livez, &stripe], args.rate);
    drop(_gateway);
    let _ = std::fs::remove_dir_all(&dir);
    terminate(&queue);
    forget_events(&source).await;
    Ok(livez.ok == livez.latencies.len() && stripe.ok == stripe.latencies.len())
}

async fn wait_ready(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the run's gateway at {url} was not ready in 30 s (is the stack up? `apex up`)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts `rate × seconds` requests at their scheduled times, whether or not earlier ones
/// have answered, and collects each one's latency and status.
async fn phase(
    name: &'static str,
    args: &WebhookArgs,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Phase {
    let total = (args.rate * args.seconds as f64).round() as usize;
    let every = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let at = start + every.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let req = request(i);
        tasks.spawn(async move {
            let sent = Instant::now();
            let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
            (sent.elapsed(), status)
        });
    }
    let mut p = Phase {
        name,
        latencies: Vec::with_capacity(total),
        ok: 0,
        other: Default::default(),
        elapsed: Duration::ZERO,
    };
    while let Some(Ok((latency, status))) = tasks.join_next().await {
        p.latencies.push(latency);
        if (200..300).contains(&status) {
            p.ok += 1;
        } else {
            *p.other.entry(status).or_default() += 1;
        }
    }
    p.elapsed = start.elapsed();
    p
}

fn print(phases: &[&Phase], rate: f64) {
    println!(
        "\n{:<26} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}  other answers",
        "phase", "requests", "2xx", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for p in phases {
        let q = percentiles(p.latencies.clone());
        println!(
            "{:<26} {:>8} {:>6} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {:?}",
            p.name,
            p.latencies.len(),
            p.ok,
            p.latencies.len() as f64 / p.elapsed.as_secs_f64().max(1e-9),
            q.p50,
            q.p95,
            q.p99,
            q.max,
            p.other
        );
    }
    if let [base, hooks] = phases {
        let (b, h) = (
            percentiles(base.latencies.clone()),
            percentiles(hooks.latencies.clone()),
        );
        println!(
            "\nwebhooks vs the /livez baseline: p50 {:.1}×, p99 {:.1}× ({:+.2} ms); the issue's gate, p99 < 50 ms at {rate} requests/s: {}",
            h.p50 / b.p50.max(1e-9),
            h.p99 / b.p99.max(1e-9),
            h.p99 - b.p99,
            if h.p99 < 50.0 && hooks.ok == hooks.latencies.len() {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

/// Deletes the run's rows from `webhook_events` (those not dispatched would stay
/// `received` for a source no gateway knows).
async fn forget_events(source: &str) {
    let url = std::env::var("APEX_GATEWAY__AUTH__DATABASE_URL")
        .unwrap_or_else(|_| "postgres://apex:apex-dev@127.0.0.1:5432/apex".to_owned());
    let deleted = async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT status, count(*) FROM webhook_events WHERE source = $1 GROUP BY status ORDER BY status",
                &[&source],
            )
            .await?;
        let counts: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {}", r.get::<_, i64>(1), r.get::<_, String>(0)))
            .collect();
        println!(
            "the run's events when it ended: {} (accepted = ingestion started by the dispatcher; received = still in the outbox)",
            counts.join(", ")
        );
        client
            .execute("DELETE FROM webhook_events WHERE source = $1", &[&source])
            .await
    };
    match deleted.await {
        Ok(n) => println!("removed the run's {n} webhook events from webhook_events"),
        Err(e) => println!("could not remove the run's webhook events ({source}): {e}"),
    }
}

/// Terminates the run's workflows (nothing polls their queue) with the stack's `temporal`
/// CLI; says so when it cannot.
fn terminate(queue: &str) {
    let settings = apex_common::stack::StackSettings::default();
    let cli = settings.venv_bin("temporal");
    let out = Command::new(&cli)
        .args([
            "workflow",
            "terminate",
            "--yes",
            "--reason",
            "apex-loadtest webhooks ended",
        ])
        .arg("--query")
        .arg(format!(
            "TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"
        ))
        .arg("--address")
        .arg(format!("127.0.0.1:{}", settings.temporal_port))
        .output();
    match out {
        Ok(o) if o.status.success() => {
            println!("terminated the run's workflows (task queue {queue})")
        }
        Ok(o) => println!(
            "could not terminate the run's workflows on {queue}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => println!("could not run {}: {e}", cli.display()),
    }
}
