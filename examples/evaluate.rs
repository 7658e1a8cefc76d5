//! zipp evaluate: runs methods × personas × queries, scores every rewritten prompt with the
//! VPTT score and prints, per query, the table of the VPTT paper's Tables 3/7 (PA, GS, CP,
//! NV, VPTT_c, VPTT, win %, Cohen's d), then writes the whole report as JSON.
//!
//! ```text
//! cargo run --release -p zipp-examples --bin evaluate -- [options]
//!   --bench synthetic|movielens|FILE.jsonl   persona source (default synthetic)
//!   --personas N        how many personas (default 100; synthetic: generated, others: first N; 0 = all)
//!   --seed S            synthetic bench seed and k-means seed (default 0)
//!   --queries vptt|extended                 the four VPTT tasks, or those plus five more (default vptt)
//!   --methods a,b,…     method specs by name (default identity,persona_only,brag,vprag,combined)
//!   --novelty paper|measured                NV = 0 for methods that never read the memory (paper, default), or measured
//!   --soft-novelty      also compute the soft NV (embeds every trigram: slower)
//!   --json FILE         the report as JSON (default evaluation.json; `-` for stdout, `none` to skip)
//!   --samples FILE      every scored prompt as JSONL (default: not written)
//!   --config JSON|@FILE an evaluation config (`EvalConfig`: methods as names or spec objects,
//!                       queries, options); replaces --methods/--queries/--novelty/--soft-novelty
//!   --models DIR        models folder (default: $ZIPP_MODELS_DIR or ~/.cache/zipp/models)
//! ```
//!
//! Memory stays bounded: personas stream from their source one at a time and only running
//! aggregates are kept. Progress (rate, ETA, peak memory) goes to stderr.
#![forbid(unsafe_code)]

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zipp_core::{Error, IndexedPersona};
use zipp_eval::datasets::movielens::{MovieLens, MovieLensOptions, DATA_DIR};
use zipp_eval::datasets::synthetic::{SyntheticBench, SyntheticOptions, Vocabulary, PHRASE_LISTS_DIR};
use zipp_eval::datasets::{JsonlFile, PersonaSource};
use zipp_eval::{Novelty, NoveltyConvention, QuerySet};
use zipp_factory::{EvalConfig, MethodSpec, Models};

struct Args {
    bench: String,
    personas: usize,
    seed: u64,
    queries: String,
    methods: Vec<String>,
    novelty: NoveltyConvention,
    soft: bool,
    json: String,
    samples: Option<PathBuf>,
    models: Option<PathBuf>,
    config: Option<String>,
}

const USAGE: &str = "usage: evaluate [--bench synthetic|movielens|FILE.jsonl] [--personas N] [--seed S] \
[--queries vptt|extended] [--methods a,b,…] [--novelty paper|measured] [--soft-novelty] [--json FILE|-|none] \
[--samples FILE] [--config JSON|@FILE] [--models DIR]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bench: "synthetic".into(),
        personas: 100,
        seed: 0,
        queries: "vptt".into(),
        methods: MethodSpec::defaults().iter().map(|m| m.name().to_string()).collect(),
        novelty: NoveltyConvention::ZeroWithoutMemory,
        soft: false,
        json: "evaluation.json".into(),
        samples: None,
        models: None,
        config: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |v: String, name: &str| v.parse::<u64>().map_err(|e| format!("{name}: {e}"));
        match flag.as_str() {
            "--bench" => a.bench = value("--bench")?,
            "--personas" => a.personas = number(value("--personas")?, "--personas")? as usize,
            "--seed" => a.seed = number(value("--seed")?, "--seed")?,
            "--queries" => a.queries = value("--queries")?,
            "--methods" => a.methods = value("--methods")?.split(',').map(|s| s.trim().to_string()).collect(),
            "--novelty" => {
                a.novelty = match value("--novelty")?.as_str() {
                    "paper" => NoveltyConvention::ZeroWithoutMemory,
                    "measured" => NoveltyConvention::Measured,
                    other => return Err(format!("--novelty: expected paper or measured, got `{other}`")),
                }
            }
            "--soft-novelty" => a.soft = true,
            "--json" => a.json = value("--json")?,
            "--samples" => a.samples = Some(value("--samples")?.into()),
            "--models" => a.models = Some(value("--models")?.into()),
            "--config" => a.config = Some(value("--config")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

#[path = "peak_memory.rs"]
mod peak_memory;
use peak_memory::peak_rss_mib;

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn run(args: Args) -> zipp_core::Result<()> {
    let started = Instant::now();
    let models = Models::at(args.models.as_ref());
    let limit = if args.personas == 0 { usize::MAX } else { args.personas };
    // Every dataset streams through one interface (`PersonaSource`).
    let source: Box<dyn PersonaSource> = match args.bench.as_str() {
        "synthetic" => {
            let vocabulary = Arc::new(match &args.models {
                Some(dir) => Vocabulary::load(&dir.join(PHRASE_LISTS_DIR))?,
                None => Vocabulary::load_default()?,
            });
            let n = if args.personas == 0 { SyntheticOptions::default().personas } else { args.personas };
            let options = SyntheticOptions { seed: args.seed, personas: n, ..Default::default() };
            Box::new(SyntheticBench::new(vocabulary, options)?)
        }
        "movielens" => {
            let data = Arc::new(match &args.models {
                Some(dir) => MovieLens::load(&dir.join(DATA_DIR))?,
                None => MovieLens::load_default()?,
            });
            Box::new(data.source(MovieLensOptions::default())?)
        }
        path => Box::new(JsonlFile::new(path)),
    };
    let total = source.len_hint().map(|n| n.min(limit));
    let personas = source.personas()?.take(limit);
    let config = match &args.config {
        Some(text) => {
            let json = match text.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?
                }
                None => text.clone(),
            };
            EvalConfig::from_json(&json)?
        }
        None => {
            let mut c = EvalConfig {
                methods: args.methods.iter().map(|m| serde_json::Value::from(m.as_str())).collect(),
                queries: QuerySet::Named(args.queries.clone()),
                ..EvalConfig::default()
            };
            c.options.novelty = args.novelty;
            if args.soft {
                c.options.vptt.novelty = Novelty::Soft;
            }
            c
        }
    };
    let mut config = config;
    config.options.vptt.seed = args.seed;
    let mut ev = config.build(&models)?;
    let mut samples = match &args.samples {
        Some(p) => {
            Some(BufWriter::new(std::fs::File::create(p).map_err(|source| Error::Io { path: p.clone(), source })?))
        }
        None => None,
    };
    let setup = started.elapsed();
    eprintln!(
        "evaluate: {} × {} methods × {} queries (setup {})",
        total.map_or_else(|| format!("personas from {}", args.bench), |n| format!("{n} {} personas", args.bench)),
        ev.methods().len(),
        ev.queries().len(),
        fmt_duration(setup)
    );
    let every = total.map_or(100, |n| (n / 20).max(1));
    let mut last_report = Instant::now();
    let mut reading = Duration::ZERO;
    let mut personas = personas;
    loop {
        let t = Instant::now();
        let Some(persona) = personas.next() else { break };
        reading += t.elapsed();
        let rows = ev.add_persona(&IndexedPersona::new(persona?))?;
        if let Some(out) = samples.as_mut() {
            for r in &rows {
                let line = serde_json::to_string(r).map_err(|e| Error::InvalidInput(e.to_string()))?;
                writeln!(out, "{line}").map_err(|source| Error::Io { path: args.samples.clone().unwrap(), source })?;
            }
        }
        let done = ev.personas() as usize;
        if done.is_multiple_of(every) || last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            let el = started.elapsed() - setup;
            let rate = done as f64 / el.as_secs_f64();
            let eta = total.map(|n| Duration::from_secs_f64((n.saturating_sub(done)) as f64 / rate));
            eprintln!(
                "  [{done}{}] {rate:.2} personas/s{}{}",
                total.map_or(String::new(), |n| format!("/{n}")),
                eta.map_or(String::new(), |e| format!(", ETA {}", fmt_duration(e))),
                peak_rss_mib().map_or(String::new(), |m| format!(", peak RSS {m:.0} MiB")),
            );
        }
    }
    if let Some(out) = samples.as_mut() {
        out.flush().map_err(|source| Error::Io { path: args.samples.clone().unwrap(), source })?;
    }
    let report = ev.report()?;
    let wall = started.elapsed();
    print!("{}", report.table());
    let t = report.timings;
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
    let line = |name: &str, d: Duration| format!("  {name:<34} {:>9.2} s  {:>5.1}%", d.as_secs_f64(), pct(d));
    eprintln!(
        "\nwall time {:.2} s for {} personas, peak RSS {}",
        wall.as_secs_f64(),
        report.personas,
        peak_rss_mib().map_or("n/a".into(), |m| format!("{m:.0} MiB"))
    );
    for (name, d) in [
        ("setup (models, vocabulary, queries)", setup),
        ("reading/generating personas", reading),
        ("embedding memory (captions, elements)", t.index_memory),
        ("persona state (text, basis, clusters)", t.persona_state),
        ("personalizing (query embeddings incl.)", t.personalize),
        ("embedding rewritten prompts", t.embed_prompts),
        ("scoring and aggregation", t.score),
    ] {
        eprintln!("{}", line(name, d));
    }
    let run = serde_json::json!({
        "bench": args.bench,
        "seed": args.seed,
        "config": config,
        "wall_seconds": wall.as_secs_f64(),
        "setup_seconds": setup.as_secs_f64(),
        "read_seconds": reading.as_secs_f64(),
        "peak_rss_mib": peak_rss_mib(),
        "threads": zipp_core::runtime::num_threads(),
    });
    let doc = serde_json::json!({ "run": run, "report": report });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::InvalidInput(e.to_string()))?;
    match args.json.as_str() {
        "none" => {}
        "-" => println!("{text}"),
        path => {
            std::fs::write(path, text + "\n").map_err(|source| Error::Io { path: path.into(), source })?;
            eprintln!("report written to {path}");
        }
    }
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("evaluate: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("evaluate: {e}");
        std::process::exit(1);
    }
}
