//! The OpenAI-compatible backend against scripted HTTP servers on 127.0.0.1: real sockets
//! (std::net::TcpListener in threads), one scripted handler per connection, every request
//! recorded. Covers a plain answer, an SSE stream, a server killed mid-stream, garbage, 429
//! and 5xx then success, a server that never answers, a refused connection, 401 with a key,
//! stop sequences split across chunks, cancellation, and the request body. Every test ends
//! within a few seconds; nothing waits on a server that does not answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zipp_core::error::{Error, ErrorKind};
use zipp_core::lm::{Cancel, Finish, Generation, LanguageModel, Message, Sampling};
use zipp_lm::{OpenAiModel, OpenAiOptions};

/// One request as the fake server read it.
#[derive(Debug, Clone)]
struct Request {
    request_line: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: Value,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

type Handler = Box<dyn Fn(&Request, &mut TcpStream) + Send + Sync>;

/// A server on a free port of 127.0.0.1: connection i is answered by `handlers[i]` (the last
/// one answers every later connection).
struct Fake {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Fake {
    fn start(handlers: Vec<Handler>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handlers = Arc::new(handlers);
        let recorded = requests.clone();
        thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let handlers = handlers.clone();
                let recorded = recorded.clone();
                thread::spawn(move || {
                    let Some(request) = read_request(&mut stream) else { return };
                    recorded.lock().unwrap().push(request.clone());
                    handlers[i.min(handlers.len() - 1)](&request, &mut stream);
                });
            }
        });
        Fake { addr, requests }
    }

    fn options(&self) -> OpenAiOptions {
        OpenAiOptions {
            connect_timeout_ms: 2_000,
            read_timeout_ms: 2_000,
            max_retries: 0,
            ..OpenAiOptions::new(format!("http://{}/v1", self.addr), "fake-model")
        }
    }

    fn model(&self, tweak: impl FnOnce(&mut OpenAiOptions)) -> OpenAiModel {
        let mut options = self.options();
        tweak(&mut options);
        OpenAiModel::new(options).unwrap()
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Request { request_line: request_line.trim_end().to_string(), headers, body })
}

/// A complete response with a body and `Connection: close`.
fn respond(stream: &mut TcpStream, status: &str, extra_headers: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

fn completion(content: &str, finish: &str) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    })
    .to_string()
}

/// The head of a chunked SSE response.
fn start_stream(stream: &mut TcpStream) {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
}

/// One HTTP chunk carrying `data`, flushed.
fn send_chunk(stream: &mut TcpStream, data: &str) {
    let _ = stream.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes());
    let _ = stream.flush();
}

fn delta(content: &str) -> String {
    let chunk = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

fn finish_event(reason: &str) -> String {
    let chunk =
        json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]});
    format!("data: {chunk}\n\n")
}

fn end_stream(stream: &mut TcpStream) {
    send_chunk(stream, "data: [DONE]\n\n");
    let _ = stream.write_all(b"0\r\n\r\n");
}

/// A handler that streams `pieces` (one HTTP chunk each, a short pause between them), then
/// `reason` and `[DONE]`.
fn streamer(pieces: &'static [&'static str], reason: &'static str) -> Handler {
    Box::new(move |_, s| {
        start_stream(s);
        send_chunk(s, ": a comment the client skips\n\n");
        for p in pieces {
            send_chunk(s, &delta(p));
            thread::sleep(Duration::from_millis(5));
        }
        send_chunk(s, &finish_event(reason));
        end_stream(s);
    })
}

fn hello() -> Vec<Message> {
    vec![Message::system("You are terse."), Message::user("Say hello.")]
}

/// Runs a generation, returning it (or the error) and the pieces `on_text` received.
fn run(model: &OpenAiModel, sampling: &Sampling, cancel: &Cancel) -> (Result<Generation, Error>, Vec<String>) {
    let mut pieces = Vec::new();
    let result = model.generate(&hello(), sampling, cancel, &mut |s: &str| pieces.push(s.to_string()));
    (result, pieces)
}

fn remote_error(result: Result<Generation, Error>) -> (Option<u16>, String) {
    let e = result.expect_err("an error");
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    let status = match &e {
        Error::Remote { status, .. } => *status,
        _ => unreachable!(),
    };
    // Shown with --nocapture: what a user would read.
    eprintln!("error: {e}");
    (status, e.to_string())
}

#[test]
fn a_plain_answer_and_its_usage() {
    let fake = Fake::start(vec![Box::new(|_, s| {
        respond(s, "200 OK", "", "application/json", &completion("Hello there!", "stop"))
    })]);
    let model = fake.model(|o| o.stream = false);
    let (g, pieces) = run(&model, &Sampling::greedy(16), &Cancel::new());
    let g = g.unwrap();
    assert_eq!(g.text, "Hello there!");
    assert_eq!((g.finish, g.prompt_tokens, g.completion_tokens), (Finish::EndOfTurn, 11, 3));
    assert_eq!(pieces.concat(), g.text);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.request_line, "POST /v1/chat/completions HTTP/1.1");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), None, "no key configured, none sent");
    assert_eq!(r.body["stream"], false);
    assert_eq!(
        r.body["messages"],
        json!([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}])
    );
}

#[test]
fn an_sse_stream_arrives_piece_by_piece() {
    let fake = Fake::start(vec![streamer(&["Hel", "lo", ", wor", "ld"], "length")]);
    let model = fake.model(|_| {});
    let (g, pieces) = run(&model, &Sampling::greedy(4), &Cancel::new());
    let g = g.unwrap();
    assert_eq!(g.text, "Hello, world");
    assert_eq!(pieces, ["Hel", "lo", ", wor", "ld"], "each chunk is passed on as it arrives");
    assert_eq!(g.finish, Finish::MaxTokens);
    assert_eq!(g.completion_tokens, 4, "no usage sent: one token per content chunk");
    let r = &fake.requests()[0];
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.header("accept"), Some("text/event-stream"));
}

#[test]
fn a_server_that_answers_json_to_a_stream_request_still_works() {
    let fake =
        Fake::start(vec![Box::new(|_, s| respond(s, "200 OK", "", "application/json", &completion("plain", "stop")))]);
    let (g, pieces) = run(&fake.model(|_| {}), &Sampling::greedy(8), &Cancel::new());
    assert_eq!(g.unwrap().text, "plain");
    assert_eq!(pieces.concat(), "plain");
}

#[test]
fn a_server_killed_mid_stream_is_an_error_and_on_text_saw_what_arrived() {
    // Chunked: the connection drops inside the body. Close-delimited: the body just ends.
    for chunked in [true, false] {
        let fake = Fake::start(vec![Box::new(move |_, s| {
            if chunked {
                start_stream(s);
                send_chunk(s, &delta("Once upon"));
                send_chunk(s, &delta(" a time"));
            } else {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all((delta("Once upon") + &delta(" a time")).as_bytes());
            }
            let _ = s.shutdown(std::net::Shutdown::Both);
        })]);
        let t = Instant::now();
        let (result, pieces) = run(&fake.model(|_| {}), &Sampling::greedy(64), &Cancel::new());
        let (status, message) = remote_error(result);
        assert!(message.contains("mid-stream") && message.contains("before the end of the answer"), "{message}");
        assert_eq!(status, Some(200));
        assert_eq!(pieces.concat(), "Once upon a time");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(fake.requests().len(), 1, "an answer that began is never retried");
    }
}

#[test]
fn garbage_answers_are_typed_errors_that_say_what_was_wrong() {
    let html = "<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n";
    let cases: Vec<(bool, Handler, &str)> = vec![
        (false, Box::new(move |_, s| respond(s, "200 OK", "", "text/html", html)), "not JSON"),
        (true, Box::new(move |_, s| respond(s, "200 OK", "", "text/html", html)), "not an event stream"),
        (true, Box::new(|_, s| respond(s, "200 OK", "", "text/plain", "no newline, no events")), "holds no event"),
        (
            false,
            Box::new(|_, s| respond(s, "200 OK", "", "application/json", r#"{"answer": "hi"}"#)),
            "not a chat completion",
        ),
        (false, Box::new(|_, s| respond(s, "200 OK", "", "application/json", r#"{"choices": []}"#)), "no choices"),
        (
            false,
            Box::new(|_, s| {
                respond(s, "200 OK", "", "application/json", r#"{"choices": [{"message": {"content": 7}}]}"#)
            }),
            "not a chat completion",
        ),
        (
            true,
            Box::new(|_, s| {
                start_stream(s);
                send_chunk(s, "data: {not json\n\n");
                end_stream(s);
            }),
            "event 1 of the stream is not JSON",
        ),
        (
            true,
            Box::new(|_, s| {
                start_stream(s);
                send_chunk(s, &delta("ok"));
                send_chunk(s, "data: {\"object\": \"something else\"}\n\n");
                end_stream(s);
            }),
            "event 2 of the stream is not a chat completion chunk",
        ),
        (
            true,
            Box::new(|_, s| {
                start_stream(s);
                send_chunk(s, "data: {\"error\": {\"message\": \"model crashed\"}}\n\n");
                end_stream(s);
            }),
            "model crashed",
        ),
        (
            false,
            Box::new(|_, s| {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\nnot http at all");
            }),
            "not HTTP",
        ),
    ];
    for (i, (stream, handler, expected)) in cases.into_iter().enumerate() {
        let fake = Fake::start(vec![handler]);
        let t = Instant::now();
        let (result, _) = run(&fake.model(|o| o.stream = stream), &Sampling::greedy(8), &Cancel::new());
        let (_, message) = remote_error(result);
        assert!(message.contains(expected), "case {i}: expected {expected:?} in: {message}");
        assert!(message.contains(&format!("http://{}/v1/chat/completions", fake.addr)), "{message}");
        assert!(t.elapsed() < Duration::from_secs(2), "case {i}");
        if i < 2 {
            assert!(message.contains("<!DOCTYPE html>"), "the start of the answer is quoted: {message}");
        }
    }
}

#[test]
fn a_429_with_retry_after_then_success() {
    let fake = Fake::start(vec![
        Box::new(|_, s| {
            respond(
                s,
                "429 Too Many Requests",
                "Retry-After: 1\r\n",
                "application/json",
                r#"{"error": {"message": "slow down"}}"#,
            )
        }),
        Box::new(|_, s| respond(s, "200 OK", "", "application/json", &completion("finally", "stop"))),
    ]);
    let t = Instant::now();
    let (g, _) = run(&fake.model(|o| o.max_retries = 2), &Sampling::greedy(8), &Cancel::new());
    assert_eq!(g.unwrap().text, "finally");
    let waited = t.elapsed();
    assert!(waited >= Duration::from_secs(1), "Retry-After: 1 was honoured ({waited:?})");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn a_5xx_is_retried_a_bounded_number_of_times() {
    let fake = Fake::start(vec![Box::new(|_, s| {
        respond(s, "503 Service Unavailable", "Retry-After: 0\r\n", "application/json", r#"{"error": "loading model"}"#)
    })]);
    let (result, _) = run(&fake.model(|o| o.max_retries = 2), &Sampling::greedy(8), &Cancel::new());
    let (status, message) = remote_error(result);
    assert_eq!(status, Some(503));
    assert!(message.contains("HTTP 503 Service Unavailable: loading model"), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert_eq!(fake.requests().len(), 3);

    // A 400 is the caller's mistake: not retried, the server's message included.
    let fake = Fake::start(vec![Box::new(|_, s| {
        let said = format!("{{\"error\": {{\"message\": \"max_tokens is too large: {}\"}}}}", "9".repeat(500));
        respond(s, "400 Bad Request", "", "application/json", &said)
    })]);
    let (result, _) = run(&fake.model(|o| o.max_retries = 3), &Sampling::greedy(8), &Cancel::new());
    let (status, message) = remote_error(result);
    assert_eq!(status, Some(400));
    assert!(message.contains("HTTP 400 Bad Request: max_tokens is too large") && message.ends_with('…'), "{message}");
    assert!(message.len() < 600, "the server's message is cut: {message}");
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn a_refused_connection_is_retried_then_reported() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let options = OpenAiOptions { max_retries: 1, ..OpenAiOptions::new(format!("http://127.0.0.1:{port}/v1"), "m") };
    let t = Instant::now();
    let (result, _) = run(&OpenAiModel::new(options).unwrap(), &Sampling::greedy(8), &Cancel::new());
    let (status, message) = remote_error(result);
    assert_eq!(status, None);
    assert!(message.to_lowercase().contains("refused") && message.contains("gave up after 2 attempts"), "{message}");
    assert!(t.elapsed() < Duration::from_secs(2), "one back-off of 250 ms: {:?}", t.elapsed());
}

#[test]
fn a_server_that_never_answers_times_out() {
    for stream in [false, true] {
        // Reads the request, then holds the connection open without a byte.
        let fake = Fake::start(vec![Box::new(|_, _| thread::sleep(Duration::from_secs(10)))]);
        let model = fake.model(|o| {
            o.read_timeout_ms = 300;
            o.max_retries = 3;
            o.stream = stream;
        });
        let t = Instant::now();
        let (result, _) = run(&model, &Sampling::greedy(8), &Cancel::new());
        let (_, message) = remote_error(result);
        assert!(message.contains("read_timeout_ms = 300"), "{message}");
        assert!(t.elapsed() < Duration::from_millis(1_500), "{:?}", t.elapsed());
        assert_eq!(fake.requests().len(), 1, "a read timeout is not retried");
    }

    // A stream that stalls after its first piece.
    let fake = Fake::start(vec![Box::new(|_, s| {
        start_stream(s);
        send_chunk(s, &delta("first"));
        thread::sleep(Duration::from_secs(10));
    })]);
    let t = Instant::now();
    let (result, pieces) = run(&fake.model(|o| o.read_timeout_ms = 300), &Sampling::greedy(8), &Cancel::new());
    let (_, message) = remote_error(result);
    assert!(message.contains("read_timeout_ms = 300") && message.contains("5 bytes of text received"), "{message}");
    assert_eq!(pieces.concat(), "first");
    assert!(t.elapsed() < Duration::from_millis(1_500), "{:?}", t.elapsed());
}

#[test]
fn a_401_names_the_variable_but_never_the_key() {
    const KEY: &str = "sk-zipp-test-0123456789abcdef";
    std::env::set_var("ZIPP_TEST_OPENAI_FAKE_KEY", KEY);
    // The server echoes the key it was sent, as some do.
    let fake = Fake::start(vec![Box::new(|r, s| {
        let sent = r.header("authorization").unwrap_or("").trim_start_matches("Bearer ").to_string();
        let body = json!({"error": {"message": format!("Incorrect API key provided: {sent}."), "type": "invalid_request_error"}});
        respond(s, "401 Unauthorized", "", "application/json", &body.to_string())
    })]);
    let model = fake.model(|o| {
        o.api_key_env = Some("ZIPP_TEST_OPENAI_FAKE_KEY".into());
        o.max_retries = 2;
    });
    assert!(!format!("{model:?}").contains(KEY));
    let (result, _) = run(&model, &Sampling::greedy(8), &Cancel::new());
    let e = result.unwrap_err();
    let message = e.to_string();
    assert!(!message.contains(KEY) && !format!("{e:?}").contains(KEY), "{message}");
    assert!(message.contains("HTTP 401 Unauthorized: Incorrect API key provided: <redacted>."), "{message}");
    assert!(message.contains("`ZIPP_TEST_OPENAI_FAKE_KEY`"), "{message}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "a 401 is not retried");
    assert_eq!(requests[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));
}

#[test]
fn stop_sequences_split_across_chunks_are_never_streamed() {
    let fake = Fake::start(vec![streamer(&["The cat E", "N", "D and then more", " text"], "stop")]);
    let stop = Sampling { stop: vec!["END".into()], ..Sampling::greedy(32) };
    let (g, pieces) = run(&fake.model(|_| {}), &stop, &Cancel::new());
    let g = g.unwrap();
    assert_eq!((g.text.as_str(), g.finish), ("The cat ", Finish::StopSequence));
    assert_eq!(pieces.concat(), "The cat ");
    assert!(pieces.iter().all(|p| !p.contains('E')), "{pieces:?}");
    assert_eq!(fake.requests()[0].body["stop"], json!(["END"]));

    // A held-back prefix that turns out not to be a stop sequence is passed on.
    let fake = Fake::start(vec![streamer(&["a\n", "b\n", "\nc"], "stop")]);
    let para = Sampling { stop: vec!["\n\n".into()], ..Sampling::greedy(32) };
    let (g, pieces) = run(&fake.model(|_| {}), &para, &Cancel::new());
    assert_eq!(g.unwrap().text, "a\nb");
    assert_eq!(pieces, ["a", "\nb"]);

    // A server that ignores `stop` (non-streaming): cut here.
    let fake = Fake::start(vec![Box::new(|_, s| {
        respond(s, "200 OK", "", "application/json", &completion("one\n\ntwo", "stop"))
    })]);
    let (g, pieces) = run(&fake.model(|o| o.stream = false), &para, &Cancel::new());
    let g = g.unwrap();
    assert_eq!((g.text.as_str(), g.finish), ("one", Finish::StopSequence));
    assert_eq!(pieces.concat(), "one");
}

#[test]
fn cancelling_mid_stream_returns_at_once_with_what_was_streamed() {
    let fake = Fake::start(vec![Box::new(|_, s| {
        start_stream(s);
        send_chunk(s, &delta("first"));
        thread::sleep(Duration::from_millis(200));
        send_chunk(s, &delta(" second"));
        thread::sleep(Duration::from_secs(10));
    })]);
    let model = fake.model(|o| o.read_timeout_ms = 20_000);
    let cancel = Cancel::new();
    let c = cancel.clone();
    let mut pieces = Vec::new();
    let t = Instant::now();
    let g = model
        .generate(&hello(), &Sampling::greedy(64), &cancel, &mut |s: &str| {
            pieces.push(s.to_string());
            c.cancel();
        })
        .unwrap();
    assert_eq!((g.text.as_str(), g.finish), ("first", Finish::Cancelled));
    assert_eq!(pieces, ["first"]);
    assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());

    // Cancelled from another thread while the server has not answered at all.
    let fake = Fake::start(vec![Box::new(|_, _| thread::sleep(Duration::from_secs(10)))]);
    let model = fake.model(|o| o.read_timeout_ms = 20_000);
    let cancel = Cancel::new();
    let c = cancel.clone();
    let canceller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        c.cancel();
    });
    let t = Instant::now();
    let (g, pieces) = run(&model, &Sampling::greedy(8), &cancel);
    let g = g.unwrap();
    assert_eq!((g.text.as_str(), g.finish), ("", Finish::Cancelled));
    assert!(pieces.is_empty());
    assert!(t.elapsed() < Duration::from_millis(600), "{:?}", t.elapsed());
    canceller.join().unwrap();

    // Cancelled during a retry's back-off.
    let fake = Fake::start(vec![Box::new(|_, s| {
        respond(s, "503 Service Unavailable", "Retry-After: 15\r\n", "text/plain", "busy")
    })]);
    let model = fake.model(|o| o.max_retries = 3);
    let cancel = Cancel::new();
    let c = cancel.clone();
    let canceller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        c.cancel();
    });
    let t = Instant::now();
    let (g, _) = run(&model, &Sampling::greedy(8), &cancel);
    assert_eq!(g.unwrap().finish, Finish::Cancelled);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(fake.requests().len(), 1);
    canceller.join().unwrap();

    // Already cancelled: nothing is sent.
    let (g, _) = run(&model, &Sampling::greedy(8), &cancel);
    assert_eq!(g.unwrap().finish, Finish::Cancelled);
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn sampling_is_validated_first_and_passed_in_the_request() {
    let fake =
        Fake::start(vec![Box::new(|_, s| respond(s, "200 OK", "", "application/json", &completion("ok", "stop")))]);
    let model = fake.model(|o| o.stream = false);
    let bad = Sampling { temperature: f32::NAN, ..Sampling::default() };
    let e = model.generate(&hello(), &bad, &Cancel::new(), &mut |_: &str| {}).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("sampling.temperature"), "{e}");
    let e = model.generate(&[], &Sampling::default(), &Cancel::new(), &mut |_: &str| {}).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(fake.requests().is_empty(), "nothing is sent before validation passes");

    let sampling = Sampling {
        temperature: 0.5,
        top_p: Some(0.9),
        top_k: Some(40),
        repeat_penalty: 1.1,
        seed: 1234,
        max_tokens: 77,
        stop: vec!["\n\n".into(), "END".into()],
    };
    run(&model, &sampling, &Cancel::new()).0.unwrap();
    let body = &fake.requests()[0].body;
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["seed"], 1234);
    assert_eq!(body["max_tokens"], 77);
    assert_eq!(body["top_p"].as_f64().map(|p| (p * 100.0).round()), Some(90.0));
    assert_eq!(body["top_k"], 40);
    assert_eq!(body["repeat_penalty"].as_f64().map(|p| (p * 100.0).round()), Some(110.0));
    assert_eq!(body["stop"], json!(["\n\n", "END"]));

    // Defaults: greedy, and none of the optional fields.
    run(&model, &Sampling::default(), &Cancel::new()).0.unwrap();
    let body = fake.requests()[1].body.as_object().unwrap().clone();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["max_tokens", "messages", "model", "seed", "stream", "temperature"]);
    assert_eq!(body["temperature"], 0.0);
}

#[test]
fn a_redirect_is_reported_not_followed() {
    let fake = Fake::start(vec![Box::new(|_, s| {
        respond(
            s,
            "308 Permanent Redirect",
            "Location: http://elsewhere.example/v1/chat/completions\r\n",
            "text/plain",
            "",
        )
    })]);
    let (result, _) = run(&fake.model(|_| {}), &Sampling::greedy(8), &Cancel::new());
    let (status, message) = remote_error(result);
    assert_eq!(status, Some(308));
    assert!(message.contains("redirects to `http://elsewhere.example/v1/chat/completions`"), "{message}");
}

#[test]
fn concurrent_calls_share_one_model() {
    let fake = Fake::start(vec![streamer(&["one", " two", " three"], "stop")]);
    let model = Arc::new(fake.model(|_| {}));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let model = model.clone();
            thread::spawn(move || {
                (0..3).map(|_| run(&model, &Sampling::greedy(8), &Cancel::new()).0.unwrap().text).collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), ["one two three"; 3]);
    }
    assert_eq!(fake.requests().len(), 12);
}
