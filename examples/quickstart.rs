//! zipp quick start: loads example personas, personalizes prompts with every method, and
//! prints each rewritten prompt with the evidence behind it.
//!
//! ```text
//! bash scripts/quickstart.sh                # provisions the default models, then runs this
//! cargo run --release -p zipp-examples --bin quickstart -- [--personas FILE] [--prompts FILE]
//!                                            [--limit-personas N] [--limit-prompts N] [--json]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use zipp_core::persona::JsonlReader;
use zipp_core::personalize::{Personalization, Request};
use zipp_core::IndexedPersona;
use zipp_factory::MethodSpec;
use zipp_factory::Models;

struct Args {
    personas: PathBuf,
    prompts: PathBuf,
    limit_personas: usize,
    limit_prompts: usize,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut a = Args {
        personas: data.join("personas.jsonl"),
        prompts: data.join("prompts.txt"),
        limit_personas: 3,
        limit_prompts: 3,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--personas" => a.personas = value("--personas")?.into(),
            "--prompts" => a.prompts = value("--prompts")?.into(),
            "--limit-personas" => a.limit_personas = value("--limit-personas")?.parse().map_err(|e| format!("{e}"))?,
            "--limit-prompts" => a.limit_prompts = value("--limit-prompts")?.parse().map_err(|e| format!("{e}"))?,
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!("usage: quickstart [--personas FILE] [--prompts FILE] [--limit-personas N] [--limit-prompts N] [--json]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(a)
}

fn print_result(p: &Personalization) {
    for line in p.explain().lines() {
        println!("  {line}");
    }
}

fn run() -> zipp_core::Result<()> {
    let args = parse_args().map_err(zipp_core::Error::InvalidInput)?;
    let t0 = Instant::now();
    let models = Models::new();
    models.load_all()?;
    let embedder = models.embedder()?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let methods = MethodSpec::defaults().iter().map(|m| m.build(&models)).collect::<zipp_core::Result<Vec<_>>>()?;
    let prompts_text = std::fs::read_to_string(&args.prompts)
        .map_err(|e| zipp_core::Error::Io { path: args.prompts.clone(), source: e })?;
    let requests: Vec<Request> = prompts_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(args.limit_prompts)
        .map(|l| match l.strip_prefix("edit:") {
            Some(p) => Request::edit(p.trim()),
            None => Request::generate(l),
        })
        .collect();

    if !args.json {
        println!(
            "zipp {} — models loaded in {load_ms:.0} ms (MiniLM `{}`)",
            zipp_core::VERSION,
            zipp_core::embed::Embedder::id(&*embedder)
        );
    }
    for persona in JsonlReader::open(&args.personas)?.take(args.limit_personas) {
        let persona = IndexedPersona::new(persona?);
        let t = Instant::now();
        persona.index(&*embedder)?;
        let index_ms = t.elapsed().as_secs_f64() * 1e3;
        if !args.json {
            let p = persona.persona();
            println!("\n=== {} — {} posts (memory indexed in {index_ms:.0} ms)", p.id, p.memory.len());
            println!("    {}", p.summary);
        }
        for request in &requests {
            if !args.json {
                println!("\n  base ({:?}): {}", request.task, request.prompt);
            }
            for m in &methods {
                let t = Instant::now();
                let out = m.personalize(&persona, request)?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                if args.json {
                    let line = serde_json::json!({"persona": persona.persona().id, "request": request, "ms": ms, "result": out});
                    println!("{line}");
                } else {
                    print_result(&out);
                }
            }
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("quickstart: {e}");
        std::process::exit(1);
    }
}
