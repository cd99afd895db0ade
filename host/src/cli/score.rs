//! `strata score`: leads from a file → the Wasm scorer (all cores) → stored → printed.

use crate::app::App;
use crate::config::Config;
use crate::db::NewScore;
use crate::domain::{Lead, Score};
use crate::input::{self, InputFormat, ReadOptions};
use crate::runtime::{CallError, LoadedPlugin};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// Scorer plugin name (default: plugins.default_scorer).
    #[arg(long)]
    pub plugin: Option<String>,
    /// CSV or JSON Lines file of leads.
    #[arg(long)]
    pub input: PathBuf,
    /// Input format (default: from the extension).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// Score without storing anything.
    #[arg(long)]
    pub no_store: bool,
    /// Print only the summary, not every score.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print scores as JSON Lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub map: super::columns::MapArgs,
}

/// Scores every lead on `threads` threads; results in input order. Blocking.
pub(crate) fn score_all(
    plugin: &Arc<LoadedPlugin>,
    leads: &[Lead],
    threads: usize,
    progress: Option<&ProgressBar>,
) -> Vec<Result<Score, CallError>> {
    type Slot = Option<Result<Score, CallError>>;
    let next = AtomicUsize::new(0);
    let mut results: Vec<Slot> = (0..leads.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut [Slot]>> =
        results.chunks_mut(256).map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let chunk = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = slots.get(chunk) else { break };
                let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                let base = chunk * 256;
                for (i, out) in slot.iter_mut().enumerate() {
                    *out = Some(plugin.score(&leads[base + i], None));
                }
                if let Some(pb) = progress {
                    pb.inc(slot.len() as u64);
                }
            });
        }
    });
    drop(slots);
    results
        .into_iter()
        .map(|r| r.expect("every lead scored"))
        .collect()
}

/// [`score_all`] on a blocking thread, with a progress bar on a terminal.
pub(crate) async fn score_off_runtime(
    plugin: &Arc<LoadedPlugin>,
    leads: &Arc<Vec<Lead>>,
    threads: usize,
) -> anyhow::Result<Vec<Result<Score, CallError>>> {
    let (p, l) = (plugin.clone(), leads.clone());
    Ok(tokio::task::spawn_blocking(move || {
        let pb = progress_bar(l.len());
        let r = score_all(&p, &l, threads, pb.as_ref());
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
        r
    })
    .await?)
}

/// A progress bar on stderr for `len` calls: only on a terminal, and only for files
/// large enough to wait for (silent when piped or redirected).
pub(crate) fn progress_bar(len: usize) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if len < 1000 || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} scoring [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    Some(pb)
}

pub(crate) fn threads(arg: Option<usize>) -> usize {
    arg.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

pub async fn run(args: ScoreArgs, config: Config) -> anyhow::Result<()> {
    let name = config.scoring_strategy(args.plugin.as_deref());
    let format = args
        .format
        .unwrap_or_else(|| InputFormat::detect(&args.input));
    let app = App::start(config).await?;
    let plugin = super::load_named(&app.manager, &name).await?;
    let read = input::read(
        &args.input,
        format,
        &ReadOptions {
            label: None,
            map: args.map.column_map()?,
        },
    )?;
    let leads = Arc::new(read.leads);
    eprintln!(
        "scoring {} leads from {} with {} (sha256 {})",
        leads.len(),
        args.input.display(),
        plugin.id(),
        plugin.sha256
    );

    let started = Instant::now();
    let results = score_off_runtime(&plugin, &leads, threads(args.threads)).await?;
    let scored_in = started.elapsed();

    let mut stored = Vec::new();
    let mut ok_leads = Vec::new();
    let mut failures = 0usize;
    for (lead, r) in leads.iter().zip(&results) {
        match r {
            Ok(s) => {
                stored.push(
                    NewScore::new(lead.id.clone(), plugin.id(), s.clone())
                        .with_sha256(&plugin.sha256)
                        .with_input(lead),
                );
                ok_leads.push(lead.clone());
            }
            Err(e) => {
                failures += 1;
                if failures <= 10 {
                    eprintln!("lead {}: {e}", lead.id);
                }
            }
        }
    }
    let store_started = Instant::now();
    if !args.no_store {
        app.db.record_scores(&ok_leads, &stored).await?;
    }
    let stored_in = store_started.elapsed();

    if !args.quiet {
        print_scores(&leads, &results, args.json);
    }
    eprintln!(
        "{} scored, {} failed in {:.1} ms ({:.0} leads/s); {} in {:.1} ms; total {:.1} ms",
        stored.len(),
        failures,
        scored_in.as_secs_f64() * 1e3,
        leads.len() as f64 / scored_in.as_secs_f64().max(1e-9),
        if args.no_store {
            "not stored"
        } else {
            "stored"
        },
        stored_in.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3,
    );
    app.shutdown().await;
    if failures > 0 && stored.is_empty() {
        anyhow::bail!("every lead failed to score");
    }
    Ok(())
}

fn print_scores(leads: &[Lead], results: &[Result<Score, CallError>], json: bool) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !json {
        let _ = writeln!(
            out,
            "{:<38} {:>6} {:<9} {:>5}  action",
            "lead", "score", "priority", "conf"
        );
    }
    for (lead, r) in leads.iter().zip(results) {
        let s = match (r, json) {
            (Ok(s), _) => s,
            (Err(e), true) => {
                let v = serde_json::json!({"lead_id": lead.id, "error": e.to_string()});
                let _ = writeln!(out, "{v}");
                continue;
            }
            // The table lists scores; stderr names the failures.
            (Err(_), false) => continue,
        };
        if json {
            let v = serde_json::json!({"lead_id": lead.id, "score": s});
            let _ = writeln!(out, "{v}");
        } else {
            let _ = writeln!(
                out,
                "{:<38} {:>6.1} {:<9} {:>5.2}  {}",
                lead.id,
                s.value,
                s.priority.as_str(),
                s.confidence,
                s.recommended_action
            );
        }
    }
}
