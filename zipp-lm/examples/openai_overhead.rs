//! The OpenAI-compatible client's own cost per request: `OpenAiModel::generate` against a
//! local server that answers instantly (a fixed completion, keep-alive, 127.0.0.1), so the
//! time is the client's (request body, HTTP thread, parsing, stop handling) plus loopback
//! and the trivial server. For scale, the same exchange done by a hand-written
//! `std::net::TcpStream` client (no JSON, no thread) is measured too.
//!
//!   cargo run --release -p zipp-lm --example openai_overhead [-- REQUESTS]
//!
//! Prints median and p95 wall time in µs over REQUESTS calls (default 1000) after 50 warm-up
//! calls, and the CPU time per call of the whole process (client and server threads, from
//! /proc/self/task/*/schedstat; it does not grow when other processes hold the cores, which
//! wall-time percentiles do), non-streaming and streaming (5 content chunks + finish +
//! `[DONE]`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use zipp_core::lm::{Cancel, LanguageModel, Message, Sampling};
use zipp_lm::{OpenAiModel, OpenAiOptions};

const WHOLE: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"A lighthouse keeper's cat watches the grey sea."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}"#;

fn stream_body() -> String {
    let mut body = String::new();
    let mut chunk = |data: &str| body.push_str(&format!("{:x}\r\n{data}\r\n", data.len()));
    for piece in ["A lighthouse", " keeper's", " cat watches", " the grey", " sea."] {
        chunk(&format!(
            "data: {{\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    chunk("data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    chunk("data: [DONE]\n\n");
    body.push_str("0\r\n\r\n");
    body
}

/// Answers every request on every connection at once, keeping connections open.
fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let whole =
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{WHOLE}", WHOLE.len());
    let stream = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        stream_body()
    );
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (whole, stream) = (whole.clone(), stream.clone());
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut writer = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                loop {
                    let mut length = 0;
                    let mut streamed = false;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if body.windows(13).any(|w| w == b"\"stream\":true") {
                        streamed = true;
                    }
                    let answer = if streamed { &stream } else { &whole };
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// CPU time of every live thread of this process (client and server), in ns, from
/// /proc/self/task/*/schedstat: unlike wall time, it does not grow when other processes hold
/// the cores.
fn cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| {
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    })
}

fn stats(mut us: Vec<f64>) -> (f64, f64) {
    us.sort_by(f64::total_cmp);
    (us[us.len() / 2], us[(us.len() * 95).div_ceil(100) - 1])
}

/// The same exchange by hand: write a fixed request, read the answer to its end.
fn raw_exchange(conn: &mut BufReader<TcpStream>, request: &[u8], streamed: bool) {
    conn.get_mut().write_all(request).unwrap();
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    if streamed {
        loop {
            line.clear();
            conn.read_line(&mut line).unwrap();
            if line == "0\r\n" {
                conn.read_line(&mut line).unwrap();
                break;
            }
        }
    } else {
        let mut body = vec![0; length];
        conn.read_exact(&mut body).unwrap();
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(1000, |a| a.parse().expect("REQUESTS is a number"));
    let addr = serve();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap().trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!("OpenAI client overhead per request, {n} requests after 50 warm-up, local instant server ({cpu})");
    let messages = [
        Message::system("You rewrite image prompts in the voice of a persona."),
        Message::user("a lighthouse at dusk, oil painting"),
    ];
    let sampling = Sampling { temperature: 0.7, seed: 42, stop: vec!["\n\n".into()], ..Sampling::greedy(64) };
    for stream in [false, true] {
        let options = OpenAiOptions { stream, ..OpenAiOptions::new(format!("http://{addr}/v1"), "fake") };
        let model = OpenAiModel::new(options).unwrap();
        let mut times = Vec::with_capacity(n);
        let mut cpu = 0;
        for i in 0..n + 50 {
            if i == 50 {
                cpu = cpu_ns();
            }
            let t = Instant::now();
            let g = model.generate(&messages, &sampling, &Cancel::new(), &mut |_: &str| {}).unwrap();
            let us = t.elapsed().as_secs_f64() * 1e6;
            assert!(g.text.ends_with("grey sea."));
            if i >= 50 {
                times.push(us);
            }
        }
        let cpu_us = (cpu_ns() - cpu) as f64 / n as f64 / 1e3;
        let (median, p95) = stats(times);
        // The model's HTTP threads wait between requests; this says whether they were reused.
        let http_threads = std::fs::read_dir("/proc/self/task").map_or(0, |tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "zipp-openai-htt")
                .count()
        });

        // The hand-written baseline over one kept-alive connection.
        let body = format!("{{\"model\":\"fake\",\"stream\":{stream}}}");
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let conn = TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        let mut conn = BufReader::new(conn);
        let mut raw = Vec::with_capacity(n);
        let mut raw_cpu = 0;
        for i in 0..n + 50 {
            if i == 50 {
                raw_cpu = cpu_ns();
            }
            let t = Instant::now();
            raw_exchange(&mut conn, request.as_bytes(), stream);
            if i >= 50 {
                raw.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        let raw_cpu_us = (cpu_ns() - raw_cpu) as f64 / n as f64 / 1e3;
        let (raw_median, raw_p95) = stats(raw);
        let what = if stream { "streaming    " } else { "non-streaming" };
        println!(
            "  {what}  OpenAiModel::generate: median {median:6.1} µs, p95 {p95:6.1} µs, CPU {cpu_us:5.1} µs; \
             hand-written socket exchange: median {raw_median:5.1} µs, p95 {raw_p95:5.1} µs, CPU {raw_cpu_us:5.1} µs; \
             HTTP threads: {http_threads}"
        );
    }
}
