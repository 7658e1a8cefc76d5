//! Streams a synthetic VPTT-Bench-shaped persona bench as JSONL (one persona per line),
//! generated from the provisioned clip-interrogator phrase lists
//! (`zipp_eval::datasets::synthetic`).
//!
//! ```text
//! bash scripts/provision-models.sh          # once: fetches the phrase lists
//! cargo run --release -p zipp-examples --bin synthetic-bench -- \
//!     [--personas N] [--seed S] [--posts P] [--out FILE|-]
//! ```
//!
//! Progress goes to stderr every 1000 personas, then one line with the count, bytes and time.
#![forbid(unsafe_code)]

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use zipp_eval::datasets::synthetic::{SyntheticBench, SyntheticOptions, Vocabulary};

const USAGE: &str = "usage: synthetic-bench [--personas N] [--seed S] [--posts P] [--out FILE|-]";

struct Args {
    options: SyntheticOptions,
    /// `None`: stdout.
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { options: SyntheticOptions::default(), out: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        fn number<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{name} takes a non-negative integer, got `{v}`"))
        }
        match flag.as_str() {
            "--personas" => args.options.personas = number("--personas", value("--personas")?)?,
            "--seed" => args.options.seed = number("--seed", value("--seed")?)?,
            "--posts" => args.options.posts_per_persona = number("--posts", value("--posts")?)?,
            "--out" => {
                let v = value("--out")?;
                args.out = (v != "-").then(|| PathBuf::from(v));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn run(args: Args) -> zipp_core::Result<()> {
    args.options.validate()?;
    let t0 = Instant::now();
    let vocabulary = Arc::new(Vocabulary::load_default()?);
    let sizes: Vec<String> = vocabulary.categories().iter().map(|(c, n)| format!("{c} {n}")).collect();
    eprintln!("vocabulary loaded in {:.2} s: {}", t0.elapsed().as_secs_f64(), sizes.join(", "));
    let bench = SyntheticBench::new(vocabulary, args.options)?;

    let (sink, path): (Box<dyn Write>, PathBuf) = match &args.out {
        Some(path) => {
            let file =
                std::fs::File::create(path).map_err(|e| zipp_core::Error::Io { path: path.clone(), source: e })?;
            (Box::new(file), path.clone())
        }
        None => (Box::new(std::io::stdout().lock()), PathBuf::from("<stdout>")),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let io_err = |e| zipp_core::Error::Io { path: path.clone(), source: e };

    let t1 = Instant::now();
    let mut bytes = 0usize;
    for (i, persona) in bench.iter().enumerate() {
        let line = persona?.to_json_string(false)?;
        out.write_all(line.as_bytes()).and_then(|_| out.write_all(b"\n")).map_err(io_err)?;
        bytes += line.len() + 1;
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "{} / {} personas, {:.1} MB, {:.2} s",
                i + 1,
                bench.len(),
                bytes as f64 / 1e6,
                t1.elapsed().as_secs_f64()
            );
        }
    }
    out.flush().map_err(io_err)?;
    let secs = t1.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} personas ({} bytes, {:.0} bytes/persona) to {} in {secs:.2} s ({:.0} personas/s)",
        bench.len(),
        bytes,
        bytes as f64 / bench.len().max(1) as f64,
        path.display(),
        bench.len() as f64 / secs.max(1e-9),
    );
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("synthetic-bench: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        // `synthetic-bench | head` closing the pipe is the reader's choice, not a failure.
        if matches!(&e, zipp_core::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe) {
            return;
        }
        eprintln!("synthetic-bench: {e}");
        // Bad option values (0 posts …) are usage errors too.
        let code = if matches!(e, zipp_core::Error::InvalidInput(_)) { 2 } else { 1 };
        std::process::exit(code);
    }
}
