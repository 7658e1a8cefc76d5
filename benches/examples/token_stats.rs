//! Token statistics of a persona bench: what an evaluation run embeds per persona, counted
//! with the real MiniLM tokenizer (ids after truncation, `[CLS]`/`[SEP]` included, exactly
//! what the embedder multiplies) — the figures behind BENCHMARKS.md's "tokens embedded per
//! persona". Tokenising only: nothing is embedded, so 1,000 synthetic personas take seconds.
//!
//! ```text
//! cargo run --release -p zipp-benches --example token_stats -- \
//!     [--bench synthetic|movielens|FILE.jsonl] [--personas N] [--seed S] [--samples FILE.jsonl]
//! ```
//!
//! - Memory (what `MemoryIndex::build` embeds): captions, the distinct element strings, the
//!   category descriptions; plus the persona text (the scorer's persona vector). Also words
//!   per caption and MiniLM tokens per word (specials excluded).
//! - `--samples`: the file `evaluate --samples` writes. Per persona, the distinct rewritten
//!   prompts the evaluator embeds (it embeds each distinct prompt once and caches the base
//!   prompts, i.e. Identity's outputs), their tokens; and per method and query, the share of
//!   prompts left equal to Identity's (the method added nothing).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::sync::Arc;

use zipp_core::embed::MiniLm;
use zipp_core::models::ModelSource;
use zipp_core::persona::JsonlReader;
use zipp_core::retrieve::categories;
use zipp_core::{Error, Persona, Result};
use zipp_eval::datasets::movielens::{MovieLens, MovieLensOptions};
use zipp_eval::datasets::synthetic::{SyntheticBench, SyntheticOptions, Vocabulary};

const USAGE: &str = "usage: token_stats [--bench synthetic|movielens|FILE.jsonl] [--personas N] [--seed S] \
[--samples FILE.jsonl]";

struct Args {
    bench: String,
    /// 0: all (synthetic: the default bench size).
    personas: usize,
    seed: u64,
    samples: Option<String>,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args { bench: "synthetic".into(), personas: 0, seed: 0, samples: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--bench" => a.bench = value("--bench")?,
            "--personas" => {
                let v = value("--personas")?;
                a.personas = v.parse().map_err(|_| format!("--personas takes an integer, got `{v}`"))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                a.seed = v.parse().map_err(|_| format!("--seed takes an integer, got `{v}`"))?;
            }
            "--samples" => a.samples = Some(value("--samples")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

/// Count, sum, min and max of a per-item quantity.
#[derive(Default)]
struct Acc {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Acc {
    fn add(&mut self, x: f64) {
        if self.n == 0 || x < self.min {
            self.min = x;
        }
        if self.n == 0 || x > self.max {
            self.max = x;
        }
        self.n += 1;
        self.sum += x;
    }
    fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.sum / self.n as f64
        }
    }
    fn line(&self, what: &str) -> String {
        format!("  {what:<52} mean {:>9.2}  min {:>7}  max {:>7}  (n = {})", self.mean(), self.min, self.max, self.n)
    }
}

type Personas<'a> = Box<dyn Iterator<Item = Result<Persona>> + 'a>;

fn run(args: Args) -> Result<()> {
    let minilm = MiniLm::load(&ModelSource::Default)?;
    let tokens = |text: &str| -> Result<usize> { Ok(minilm.token_ids(text)?.len()) };
    let limit = if args.personas == 0 { usize::MAX } else { args.personas };

    let synthetic;
    let movielens;
    let personas: Personas = match args.bench.as_str() {
        "synthetic" => {
            let n = if args.personas == 0 { SyntheticOptions::default().personas } else { args.personas };
            let options = SyntheticOptions { seed: args.seed, personas: n, ..Default::default() };
            synthetic = SyntheticBench::new(Arc::new(Vocabulary::load_default()?), options)?;
            Box::new(synthetic.iter())
        }
        "movielens" => {
            movielens = MovieLens::load_default()?;
            Box::new(movielens.personas(&MovieLensOptions::default()).take(limit))
        }
        path => Box::new(JsonlReader::open(path)?.take(limit)),
    };

    let mut posts = Acc::default();
    let mut caption_tokens = Acc::default();
    let mut caption_tokens_per_persona = Acc::default();
    let mut caption_words = Acc::default();
    let (mut words_total, mut word_tokens_total) = (0u64, 0u64);
    let mut truncated = 0u64;
    let mut elements = Acc::default();
    let mut element_tokens_per_persona = Acc::default();
    let mut cats = Acc::default();
    let mut cat_tokens_per_persona = Acc::default();
    let mut persona_text_tokens = Acc::default();
    let mut memory_tokens_per_persona = Acc::default();
    let max_tokens = minilm.options().max_tokens;
    for persona in personas {
        let p = persona?;
        posts.add(p.memory.len() as f64);
        let mut cap_sum = 0usize;
        for post in &p.memory {
            let t = tokens(&post.caption)?;
            caption_tokens.add(t as f64);
            cap_sum += t;
            truncated += u64::from(t >= max_tokens);
            let w = post.caption.split_whitespace().count();
            caption_words.add(w as f64);
            words_total += w as u64;
            word_tokens_total += t.saturating_sub(2) as u64;
        }
        caption_tokens_per_persona.add(cap_sum as f64);
        // As `MemoryIndex::build`: distinct element strings, and one description per category.
        let distinct: BTreeSet<&str> =
            p.memory.iter().flat_map(|post| post.elements.values().flatten().map(String::as_str)).collect();
        elements.add(distinct.len() as f64);
        let el_sum = distinct.iter().map(|e| tokens(e)).sum::<Result<usize>>()?;
        element_tokens_per_persona.add(el_sum as f64);
        let categories_present = p.categories();
        cats.add(categories_present.len() as f64);
        let cat_sum = categories_present.iter().map(|c| tokens(&categories::describe(c))).sum::<Result<usize>>()?;
        cat_tokens_per_persona.add(cat_sum as f64);
        memory_tokens_per_persona.add((cap_sum + el_sum + cat_sum) as f64);
        persona_text_tokens.add(tokens(&p.persona_text())? as f64);
    }
    println!(
        "bench {} (seed {}), MiniLM tokens = ids after truncation to {max_tokens}, specials included",
        args.bench, args.seed
    );
    println!("{}", posts.line("posts per persona"));
    println!("{}", caption_tokens.line("tokens per caption"));
    println!("{}", caption_tokens_per_persona.line("caption tokens per persona"));
    println!("{}", caption_words.line("words per caption (whitespace-separated)"));
    println!(
        "  tokens per word in captions (specials excluded)        {:.3}   captions at the {max_tokens}-token cap: {truncated}",
        word_tokens_total as f64 / words_total.max(1) as f64
    );
    println!("{}", elements.line("distinct elements per persona"));
    println!("{}", element_tokens_per_persona.line("element tokens per persona"));
    println!("{}", cats.line("categories per persona"));
    println!("{}", cat_tokens_per_persona.line("category-description tokens per persona"));
    println!("{}", memory_tokens_per_persona.line("memory tokens per persona (captions+elements+cats)"));
    println!("{}", persona_text_tokens.line("persona-text tokens per persona"));

    if let Some(path) = &args.samples {
        samples(path, &tokens)?;
    }
    Ok(())
}

/// The fields of `zipp_core::eval::Sample` read here (the score fields are ignored).
struct Sample {
    persona: String,
    query: String,
    method: String,
    prompt: String,
}

fn samples(path: &str, tokens: &dyn Fn(&str) -> Result<usize>) -> Result<()> {
    let io = |source| Error::Io { path: path.into(), source };
    let reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |e: String| Error::InvalidInput(format!("{path} line {}: {e}", i + 1));
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let field = |name: &str| v[name].as_str().map(str::to_string).ok_or_else(|| bad(format!("no string `{name}`")));
        rows.push(Sample {
            persona: field("persona")?,
            query: field("query")?,
            method: field("method")?,
            prompt: field("prompt")?,
        });
    }
    let is_identity = |m: &str| m.eq_ignore_ascii_case("identity");
    // Identity's outputs are the base prompts: the evaluator embeds them once per run.
    let base: HashMap<(&str, &str), &str> = rows
        .iter()
        .filter(|s| is_identity(&s.method))
        .map(|s| ((s.persona.as_str(), s.query.as_str()), s.prompt.as_str()))
        .collect();
    let base_prompts: BTreeSet<&str> = base.values().copied().collect();
    let mut per_persona: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &rows {
        let set = per_persona.entry(s.persona.as_str()).or_default();
        if !base_prompts.contains(s.prompt.as_str()) {
            set.insert(s.prompt.as_str());
        }
    }
    let mut distinct = Acc::default();
    let mut prompt_tokens = Acc::default();
    let mut per_persona_tokens = Acc::default();
    for set in per_persona.values() {
        distinct.add(set.len() as f64);
        let mut sum = 0;
        for p in set {
            let t = tokens(p)?;
            prompt_tokens.add(t as f64);
            sum += t;
        }
        per_persona_tokens.add(sum as f64);
    }
    println!(
        "samples {path}: {} rows, {} personas, {} base prompts",
        rows.len(),
        per_persona.len(),
        base_prompts.len()
    );
    println!("{}", distinct.line("distinct non-base prompts per persona"));
    println!("{}", prompt_tokens.line("tokens per distinct prompt"));
    println!("{}", per_persona_tokens.line("prompt tokens per persona"));
    if base.is_empty() {
        println!("  (no Identity rows: the unchanged-prompt shares need them)");
        return Ok(());
    }
    // (method, query) → (unchanged, total)
    let mut unchanged: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for s in rows.iter().filter(|s| !is_identity(&s.method)) {
        let Some(b) = base.get(&(s.persona.as_str(), s.query.as_str())) else { continue };
        let e = unchanged.entry((s.method.as_str(), s.query.as_str())).or_default();
        e.0 += u64::from(*b == s.prompt);
        e.1 += 1;
    }
    println!("  prompts equal to Identity's (the method added nothing), per method and query:");
    for ((method, query), (same, n)) in &unchanged {
        println!("    {method:<14} {query:<28} {same:>6} / {n:<6} = {:5.1}%", 100.0 * *same as f64 / *n as f64);
    }
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("token_stats: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("token_stats: {e}");
        std::process::exit(1);
    }
}
