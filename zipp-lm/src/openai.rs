//! The remote backend: any OpenAI-compatible `/v1/chat/completions` server (vLLM, llama.cpp's
//! server, Ollama, hosted APIs) as a [`LanguageModel`].
//!
//! [`OpenAiModel`] keeps the trait's contract (zipp-core's `lm` module) over HTTP:
//! - [`Sampling::validate`] and [`validate_messages`] pass before anything is sent;
//! - `temperature`, `max_tokens`, `seed` and (when set) `top_p` are sent as the OpenAI fields,
//!   the first [`MAX_STOP_SENT`] stop sequences as `stop`; `top_k` and `repeat_penalty` only
//!   when set / not 1 (llama.cpp's and vLLM's servers accept them as extra fields; hosted
//!   OpenAI rejects unknown fields). Same seed and inputs give the same text as far as the
//!   server is deterministic (llama.cpp's server, for one, answers a prompt it has cached
//!   slightly differently from its first evaluation of it: tests/openai_llama_server.rs);
//! - the text streams to `on_text` as the server streams it (SSE, `stream: true`, the
//!   default), or in one piece (`stream: false`); either way the pieces concatenate to
//!   [`Generation::text`];
//! - stop sequences are applied here too (servers differ: some ignore `stop`, some allow four):
//!   the text ends before the first one, and while streaming a suffix that could be the start
//!   of one is held back until it cannot (`stop.rs`, shared with the GGUF backend); when one
//!   is found the connection is closed, which stops the server's generation;
//! - [`Cancel`] is checked after every chunk received, every 20 ms while waiting for the
//!   server, and during retry back-off sleeps; a cancelled call returns the text `on_text`
//!   received (finish [`Finish::Cancelled`]) at once, without waiting for the server;
//! - the finish: `finish_reason: "length"` is [`Finish::MaxTokens`]; a stop sequence found
//!   here, or one the server names (vLLM's `stop_reason`), is [`Finish::StopSequence`];
//!   anything else is [`Finish::EndOfTurn`] (OpenAI's `"stop"` covers both the end of the
//!   turn and a stop sequence the server cut itself, and most servers do not say which).
//!
//! Failures are [`Error::Remote`] (kind `remote`) naming the endpoint and what went wrong;
//! an API key never appears in them (nor in `Debug` output or logs: this module logs
//! nothing). What is retried: connection failures before an answer (refused, reset, connect
//! timeout), 429 and
//! 5xx answers, up to [`OpenAiOptions::max_retries`] times with exponential back-off from
//! [`BACKOFF_BASE`] (doubling, at most [`MAX_WAIT`]) or the server's `Retry-After` seconds
//! (at most [`MAX_WAIT`]). Not retried: other 4xx (the server's own error message, cut to
//! [`MESSAGE_CHARS`] characters, is in the error), a read timeout (the server took the
//! request and may still be working on it; a retry would queue it twice), and anything
//! after the answer began. A stream that ends before `[DONE]` and before a `finish_reason`
//! (the server died mid-answer) is an error, not a short answer: its text is incomplete, and
//! `on_text` has seen only what arrived. An answer that is not what the protocol says (not
//! JSON, not an event stream, the wrong shape, an HTML page) is an error naming what was
//! wrong and quoting the start of it.
//!
//! Plain `http://` only: zipp is built without a TLS stack (ARCHITECTURE.md, "zipp-lm", has
//! the build-time measurement behind that). An `https://` base URL is refused with a message
//! saying so; hosted APIs are reached through a TLS-terminating proxy on the same machine,
//! e.g. `caddy reverse-proxy --from :8443 --to https://api.openai.com --change-host-header`
//! and `base_url: "http://127.0.0.1:8443/v1"`.
//!
//! Each request runs its HTTP exchange on one of the model's HTTP threads (they wait for the
//! next request between requests), which hands the received bytes to the calling thread over
//! a channel, so the caller can return on cancellation while the socket is still blocked in a
//! read (that exchange ends by itself, at most a read timeout later). `on_text` is called on
//! the calling thread.

use std::fmt;
use std::io::Read;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ureq::http::{StatusCode, Uri};
use zipp_core::error::{Error, Result};
use zipp_core::lm::{validate_messages, Cancel, Finish, Generation, LanguageModel, Message, Sampling};

use crate::stop::stable_len;

/// The most retries [`OpenAiOptions::max_retries`] allows.
pub const MAX_RETRIES_LIMIT: u32 = 10;
/// The first back-off wait; each later one doubles.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The longest wait before a retry, for back-off and for a server's `Retry-After`.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// Stop sequences sent to the server at most (OpenAI's limit); the rest apply here only.
pub const MAX_STOP_SENT: usize = 4;
/// Characters of a server's error message (or of a garbage answer) quoted in an error.
pub const MESSAGE_CHARS: usize = 300;
/// The largest answer read (a whole completion, or a whole stream).
pub const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Bytes of an error answer read at most.
const MAX_ERROR_BYTES: usize = 64 << 10;
/// How often the caller's thread checks [`Cancel`] while it waits.
const TICK: Duration = Duration::from_millis(20);
/// How long the end of a stream's body is awaited after `[DONE]`.
const DONE_GRACE: Duration = Duration::from_millis(100);
/// Added to the configured timeouts before the caller's thread gives up on a silent HTTP
/// thread (ureq's own timeouts fire first; this is the backstop).
const WATCHDOG_SLACK: Duration = Duration::from_secs(1);

fn default_connect_timeout_ms() -> u64 {
    10_000
}

fn default_read_timeout_ms() -> u64 {
    120_000
}

fn default_max_retries() -> u32 {
    2
}

fn default_stream() -> bool {
    true
}

/// Where the server is and how to talk to it; JSON field names as here, unknown fields
/// rejected. Only `base_url` and `model` are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiOptions {
    /// The API root, up to and including `/v1` as OpenAI clients take it
    /// (`http://127.0.0.1:8080/v1`); requests go to `{base_url}/chat/completions`.
    /// `http://` only (module documentation); no credentials, query or fragment.
    pub base_url: String,
    /// The model name sent with every request.
    pub model: String,
    /// The *name* of the environment variable that holds the API key (`OPENAI_API_KEY`),
    /// read once when the model is built and sent as `Authorization: Bearer …`; `None` =
    /// no key (local servers). The key itself never appears in options, errors or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Time to establish the TCP connection (1 ..= 600 000 ms; default 10 000).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The longest silence while waiting for the answer or between two pieces of it
    /// (1 ..= 3 600 000 ms; default 120 000: a CPU server may think for a while before the
    /// first token of a long prompt).
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Retries after a connection failure, a 429 or a 5xx (0 ..= [`MAX_RETRIES_LIMIT`];
    /// default 2).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Ask for a streamed answer (SSE) and pass it on as it arrives (default `true`).
    #[serde(default = "default_stream")]
    pub stream: bool,
}

impl OpenAiOptions {
    /// Options for `model` at `base_url`, everything else default.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiOptions {
        OpenAiOptions {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            read_timeout_ms: default_read_timeout_ms(),
            max_retries: default_max_retries(),
            stream: default_stream(),
        }
    }

    /// Parses options from JSON (unknown fields are an error) and validates them.
    pub fn from_json(json: &str) -> Result<OpenAiOptions> {
        let options: OpenAiOptions = zipp_core::json::from_str(json, "OpenAI options")?;
        options.validate()?;
        Ok(options)
    }

    /// Checks every option; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: String| Err(Error::InvalidInput(format!("openai.{field}: {why}")));
        endpoint(&self.base_url).map_err(|why| Error::InvalidInput(format!("openai.base_url: {why}")))?;
        if self.model.trim().is_empty() {
            return bad("model", "must not be empty".into());
        }
        if self.model.chars().any(char::is_control) {
            return bad("model", "must not contain control characters".into());
        }
        if let Some(name) = &self.api_key_env {
            // Never echoed: a key pasted here by mistake must not end up in an error message.
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return bad(
                    "api_key_env",
                    "must be the NAME of an environment variable (letters, digits and _, not starting \
                     with a digit), not the key itself"
                        .into(),
                );
            }
        }
        if !(1..=600_000).contains(&self.connect_timeout_ms) {
            return bad("connect_timeout_ms", format!("must be in 1..=600000, got {}", self.connect_timeout_ms));
        }
        if !(1..=3_600_000).contains(&self.read_timeout_ms) {
            return bad("read_timeout_ms", format!("must be in 1..=3600000, got {}", self.read_timeout_ms));
        }
        if self.max_retries > MAX_RETRIES_LIMIT {
            return bad("max_retries", format!("must be in 0..={MAX_RETRIES_LIMIT}, got {}", self.max_retries));
        }
        Ok(())
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }
}

/// `{base_url}/chat/completions` for a valid base URL, else why it is not valid.
fn endpoint(base_url: &str) -> std::result::Result<String, String> {
    let lower = base_url.get(..8).unwrap_or(base_url).to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "`{base_url}` is https, and zipp is built without TLS (plain http only, which keeps C \
             code out of its build): use a local server over http://, or a TLS-terminating proxy \
             on this machine (for example `caddy reverse-proxy --from :8443 --to https://… \
             --change-host-header`, or nginx with `proxy_pass https://…`) and point base_url at \
             it (`http://127.0.0.1:8443/v1`)"
        ));
    }
    if !lower.starts_with("http://") {
        return Err(format!("`{base_url}` must start with http://"));
    }
    if base_url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let uri: Uri = base_url.parse().map_err(|e| format!("`{base_url}` is not a URL: {e}"))?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if authority.contains('@') {
        // Not echoed: the credentials are the part to keep out of messages.
        return Err("must not carry credentials (user:password@); use api_key_env".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{base_url}` has no host"));
    }
    if uri.query().is_some() || base_url.contains('#') {
        return Err(format!("`{base_url}` must not have a query or fragment"));
    }
    Ok(format!("{}/chat/completions", base_url.trim_end_matches('/')))
}

/// The key in the environment variable `name`; an unset, empty or unusable variable is
/// [`Error::InvalidInput`] naming the variable (never its value).
fn read_key(name: &str) -> Result<ApiKey> {
    let why = match std::env::var(name) {
        Ok(key) if key.is_empty() => "is empty",
        Ok(key) if !key.chars().all(|c| c.is_ascii_graphic()) => {
            "holds characters an HTTP header cannot carry (only printable ASCII without spaces)"
        }
        Ok(key) => return Ok(ApiKey(key)),
        Err(std::env::VarError::NotPresent) => "is not set",
        Err(std::env::VarError::NotUnicode(_)) => "is not valid Unicode",
    };
    Err(Error::InvalidInput(format!("openai.api_key_env: the environment variable `{name}` {why}")))
}

/// The API key: kept out of `Debug` output.
#[derive(Clone)]
struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A chat model behind an OpenAI-compatible server (module documentation). Cheap to share:
/// calls from several threads run concurrently over the agent's connection pool.
pub struct OpenAiModel {
    options: OpenAiOptions,
    endpoint: String,
    key: Option<ApiKey>,
    agent: ureq::Agent,
    workers: Arc<Workers>,
    id: String,
}

impl fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("options", &self.options)
            .field("endpoint", &self.endpoint)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// Validates `options`, reads the API key from the environment variable they name (an
    /// unset, empty or non-text variable is [`Error::InvalidInput`] naming the variable) and
    /// builds the client. Nothing is sent yet.
    pub fn new(options: OpenAiOptions) -> Result<OpenAiModel> {
        options.validate()?;
        let endpoint = endpoint(&options.base_url).map_err(Error::InvalidInput)?;
        let key = match &options.api_key_env {
            None => None,
            Some(name) => Some(read_key(name)?),
        };
        let connect = options.connect_timeout();
        let read = options.read_timeout();
        let config = ureq::Agent::config_builder()
            // 4xx/5xx answers come back as responses: their bodies carry the server's message.
            .http_status_as_error(false)
            // A redirect of a POST is reported (with its target), never followed.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_resolve(Some(connect))
            .timeout_connect(Some(connect))
            .timeout_per_read(Some(read))
            .timeout_per_write(Some(read))
            .user_agent(format!("zipp/{}", zipp_core::VERSION))
            .build();
        let id = format!("openai:{}@{}", options.model, options.base_url.trim_end_matches('/'));
        let agent = ureq::Agent::new_with_config(config);
        Ok(OpenAiModel { agent, workers: Arc::default(), options, endpoint, key, id })
    }

    /// Parses options from JSON (module documentation) and builds the model.
    pub fn from_json(json: &str) -> Result<OpenAiModel> {
        OpenAiModel::new(OpenAiOptions::from_json(json)?)
    }

    /// The options the model was built with.
    pub fn options(&self) -> &OpenAiOptions {
        &self.options
    }

    /// The URL requests go to (`{base_url}/chat/completions`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The request body for one call.
    fn request_body(&self, messages: &[Message], sampling: &Sampling) -> Result<String> {
        let body = RequestBody {
            model: &self.options.model,
            messages,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            max_tokens: sampling.max_tokens,
            stop: &sampling.stop[..sampling.stop.len().min(MAX_STOP_SENT)],
            seed: sampling.seed,
            stream: self.options.stream,
            top_k: sampling.top_k,
            repeat_penalty: (sampling.repeat_penalty != 1.0).then_some(sampling.repeat_penalty),
        };
        serde_json::to_string(&body).map_err(|e| Error::Internal(format!("serialising an OpenAI request: {e}")))
    }

    /// An [`Error::Remote`] for this endpoint, with the API key (should a server echo it)
    /// replaced.
    fn error(&self, status: Option<u16>, message: impl Into<String>) -> Error {
        let mut message = message.into();
        if let Some(ApiKey(key)) = &self.key {
            message = message.replace(key.as_str(), "<redacted>");
        }
        Error::Remote { url: self.endpoint.clone(), status, message }
    }

    /// Starts one HTTP exchange on its own thread; its events arrive on the receiver.
    fn start(&self, body: &str) -> Result<Receiver<Event>> {
        let (tx, rx) = mpsc::channel();
        let mut request = self
            .agent
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header("accept", if self.options.stream { "text/event-stream" } else { "application/json" });
        if let Some(ApiKey(key)) = &self.key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let body = body.to_owned();
        self.workers
            .run(Box::new(move || exchange(request, body, tx)))
            .map_err(|e| self.error(None, format!("could not start an HTTP thread: {e}")))?;
        Ok(rx)
    }

    /// One attempt: send, then read the answer into `out`.
    fn attempt(&self, body: &str, cancel: &Cancel, out: &mut Output<'_>) -> Attempt {
        let rx = match self.start(body) {
            Ok(rx) => rx,
            Err(e) => return Attempt::Failed(e),
        };
        let opts = &self.options;
        let head_limit = opts.connect_timeout() + opts.read_timeout() + WATCHDOG_SLACK;
        let head = match wait(&rx, cancel, head_limit) {
            Wait::Event(Event::Head(head)) => head,
            Wait::Event(Event::Failed(failure)) => {
                let retry = failure.retryable;
                let error = self.error(None, format!("the request failed: {}", failure.message(opts)));
                return if retry { Attempt::Retry { error, after: None } } else { Attempt::Failed(error) };
            }
            Wait::Event(Event::Data(_) | Event::End) | Wait::Gone => {
                return Attempt::Failed(Error::Internal("the HTTP thread ended without an answer".into()))
            }
            Wait::Cancelled => return Attempt::Cancelled,
            Wait::Silent => return Attempt::Failed(self.error(None, silent_message(opts, "an answer"))),
        };
        if !(200..300).contains(&head.status) {
            return self.status_error(head, &rx, cancel);
        }
        let mut reader = BodyReader { rx: &rx, cancel, limit: opts.read_timeout() + WATCHDOG_SLACK, received: 0 };
        let event_stream = head.content_type.as_deref().is_some_and(|t| t.contains("text/event-stream"));
        let json = head.content_type.as_deref().is_some_and(|t| t.contains("json"));
        if opts.stream && (event_stream || !json) {
            self.read_stream(&head, &mut reader, out)
        } else {
            // Also a streaming request the server answered with one JSON document.
            self.read_whole(&head, &mut reader, out)
        }
    }

    /// A non-2xx answer: its message, retried for 429 and 5xx.
    fn status_error(&self, head: Head, rx: &Receiver<Event>, cancel: &Cancel) -> Attempt {
        let mut reader = BodyReader { rx, cancel, limit: self.options.read_timeout() + WATCHDOG_SLACK, received: 0 };
        let mut body = Vec::new();
        // The body is best effort: a server that sends the status and hangs still gets its
        // status reported.
        while body.len() < MAX_ERROR_BYTES {
            match reader.next() {
                Ok(Some(bytes)) => body.extend_from_slice(&bytes),
                Ok(None) | Err(Stop::Failed(_) | Stop::Silent) => break,
                Err(Stop::Cancelled) => return Attempt::Cancelled,
            }
        }
        let status = head.status;
        let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        let mut message = format!("HTTP {status} {reason}").trim_end().to_string();
        let said = server_message(&body);
        if !said.is_empty() {
            message = format!("{message}: {said}");
        }
        match status {
            401 | 403 => match &self.options.api_key_env {
                Some(name) => message.push_str(&format!(" (check the API key in the environment variable `{name}`)")),
                None => message.push_str(" (no api_key_env is set; does the server need an API key?)"),
            },
            404 => message.push_str(
                " (check base_url, which usually ends in /v1 since requests go to {base_url}/chat/completions, \
                 and the model name)",
            ),
            300..=399 => {
                let to = head.location.as_deref().map(|l| quote(l.as_bytes())).unwrap_or_else(|| "?".into());
                message.push_str(&format!(" (the server redirects to {to}; set base_url to the final address)"));
            }
            _ => {}
        }
        let error = self.error(Some(status), message);
        if status == 429 || (500..600).contains(&status) {
            Attempt::Retry { error, after: head.retry_after }
        } else {
            Attempt::Failed(error)
        }
    }

    /// A whole JSON completion (`stream: false`, or a server that ignored `stream: true`).
    fn read_whole(&self, head: &Head, reader: &mut BodyReader<'_>, out: &mut Output<'_>) -> Attempt {
        let mut body = Vec::new();
        loop {
            match reader.next() {
                Ok(Some(bytes)) => {
                    body.extend_from_slice(&bytes);
                    if body.len() > MAX_ANSWER_BYTES {
                        return Attempt::Failed(
                            self.error(
                                Some(head.status),
                                format!("the answer is longer than {MAX_ANSWER_BYTES} bytes"),
                            ),
                        );
                    }
                }
                Ok(None) => break,
                Err(stop) => return self.stopped(stop, "the answer", None),
            }
        }
        let what = |why: String| self.error(Some(head.status), why);
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return Attempt::Failed(what(format!(
                    "the answer is not JSON ({e}; content-type {}); it starts with {}",
                    head.content_type.as_deref().unwrap_or("none"),
                    quote(&body)
                )))
            }
        };
        if let Some(error) = value.get("error") {
            return Attempt::Failed(what(format!("the server reported an error: {}", error_text(error))));
        }
        let completion: Completion = match Completion::deserialize(&value) {
            Ok(c) => c,
            Err(e) => {
                return Attempt::Failed(what(format!(
                    "the answer is not a chat completion ({e}); it starts with {}",
                    quote(&body)
                )))
            }
        };
        let Some(choice) = completion.choices.into_iter().next() else {
            return Attempt::Failed(what("the answer has no choices".into()));
        };
        out.push(choice.message.content.as_deref().unwrap_or(""));
        out.server_finish(choice.finish_reason.as_deref(), choice.stop_reason.as_ref());
        if let Some(usage) = completion.usage {
            out.usage = Some(usage);
        }
        Attempt::Done
    }

    /// A server-sent event stream of completion chunks.
    fn read_stream(&self, head: &Head, reader: &mut BodyReader<'_>, out: &mut Output<'_>) -> Attempt {
        let mut sse = Sse::default();
        let mut events = Vec::new();
        let mut seen_finish = false;
        // The start of the answer, quoted when it turns out not to be an event stream.
        let mut start = Vec::new();
        let what = |why: String| self.error(Some(head.status), why);
        loop {
            let bytes = match reader.next() {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    return if seen_finish {
                        // A finish_reason arrived; only `[DONE]` went missing.
                        Attempt::Done
                    } else if sse.count == 0 && !start.is_empty() {
                        Attempt::Failed(what(format!(
                            "the answer is not an event stream (content-type {}): it holds no event; it \
                             starts with {}",
                            head.content_type.as_deref().unwrap_or("none"),
                            quote(&start)
                        )))
                    } else {
                        Attempt::Failed(what(format!(
                            "the connection closed mid-stream, before the end of the answer ({} bytes of \
                             text received; the server may have crashed or been stopped)",
                            out.text.len()
                        )))
                    };
                }
                Err(Stop::Failed(failure)) if failure.retryable => {
                    // Reset, or EOF inside a chunk: the server went away mid-answer.
                    return Attempt::Failed(what(format!(
                        "the connection broke mid-stream, before the end of the answer ({} bytes of text \
                         received; the server may have crashed or been stopped): {}",
                        out.text.len(),
                        failure.message(&self.options)
                    )));
                }
                Err(stop) => return self.stopped(stop, "the next piece of the stream", Some(out.text.len())),
            };
            if start.len() < 4 * MESSAGE_CHARS {
                start.extend_from_slice(&bytes[..bytes.len().min(4 * MESSAGE_CHARS)]);
            }
            if reader.received > MAX_ANSWER_BYTES {
                return Attempt::Failed(what(format!("the stream is longer than {MAX_ANSWER_BYTES} bytes")));
            }
            if let Err(why) = sse.push(&bytes, &mut events) {
                return Attempt::Failed(what(format!(
                    "the answer is not an event stream (content-type {}): {why}",
                    head.content_type.as_deref().unwrap_or("none")
                )));
            }
            for data in events.drain(..) {
                if data.trim() == "[DONE]" {
                    // The end of the body follows at once; waiting for it (briefly) hands the
                    // connection back to the pool and the HTTP thread back to the model.
                    let mut rest = BodyReader { limit: DONE_GRACE, ..*reader };
                    let since = Instant::now();
                    while since.elapsed() < DONE_GRACE && matches!(rest.next(), Ok(Some(_))) {}
                    return Attempt::Done;
                }
                sse.count += 1;
                let value: Value = match serde_json::from_str(&data) {
                    Ok(v) => v,
                    Err(e) => {
                        return Attempt::Failed(what(format!(
                            "event {} of the stream is not JSON ({e}): {}",
                            sse.count,
                            quote(data.as_bytes())
                        )))
                    }
                };
                if let Some(error) = value.get("error") {
                    return Attempt::Failed(what(format!(
                        "the server reported an error mid-stream: {}",
                        error_text(error)
                    )));
                }
                let chunk: Chunk = match Chunk::deserialize(&value) {
                    Ok(c) if c.choices.is_some() || c.usage.is_some() => c,
                    Ok(_) => {
                        return Attempt::Failed(what(format!(
                            "event {} of the stream is not a chat completion chunk (no `choices`): {}",
                            sse.count,
                            quote(data.as_bytes())
                        )))
                    }
                    Err(e) => {
                        return Attempt::Failed(what(format!(
                            "event {} of the stream is not a chat completion chunk ({e}): {}",
                            sse.count,
                            quote(data.as_bytes())
                        )))
                    }
                };
                if let Some(usage) = chunk.usage {
                    out.usage = Some(usage);
                }
                if let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) {
                    if let Some(content) = choice.delta.and_then(|d| d.content).filter(|c| !c.is_empty()) {
                        out.chunks += 1;
                        if out.push(&content) {
                            // A stop sequence: closing the connection stops the server too.
                            return Attempt::Done;
                        }
                    }
                    if choice.finish_reason.is_some() {
                        seen_finish = true;
                        out.server_finish(choice.finish_reason.as_deref(), choice.stop_reason.as_ref());
                    }
                }
                if reader.cancel.is_cancelled() {
                    return Attempt::Cancelled;
                }
            }
        }
    }

    /// The attempt's result when reading the body stopped early.
    fn stopped(&self, stop: Stop, waiting_for: &str, text_bytes: Option<usize>) -> Attempt {
        let after = text_bytes.map(|n| format!(" ({n} bytes of text received)")).unwrap_or_default();
        match stop {
            Stop::Cancelled => Attempt::Cancelled,
            Stop::Silent => {
                Attempt::Failed(self.error(None, format!("{}{after}", silent_message(&self.options, waiting_for))))
            }
            Stop::Failed(failure) => Attempt::Failed(
                self.error(None, format!("reading {waiting_for} failed: {}{after}", failure.message(&self.options))),
            ),
        }
    }
}

impl LanguageModel for OpenAiModel {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn generate(
        &self,
        messages: &[Message],
        sampling: &Sampling,
        cancel: &Cancel,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Generation> {
        sampling.validate()?;
        validate_messages(messages)?;
        let body = self.request_body(messages, sampling)?;
        let mut out = Output::new(&sampling.stop, on_text);
        let mut retries = 0;
        loop {
            if cancel.is_cancelled() {
                return Ok(out.cancelled());
            }
            match self.attempt(&body, cancel, &mut out) {
                Attempt::Done => return Ok(out.finish()),
                Attempt::Cancelled => return Ok(out.cancelled()),
                Attempt::Failed(e) => return Err(e),
                Attempt::Retry { error, after } => {
                    if retries == self.options.max_retries {
                        return Err(match error {
                            Error::Remote { url, status, message } if retries > 0 => Error::Remote {
                                url,
                                status,
                                message: format!("{message} (gave up after {} attempts)", retries + 1),
                            },
                            e => e,
                        });
                    }
                    let pause = after.unwrap_or_else(|| backoff(retries)).min(MAX_WAIT);
                    if !sleep(pause, cancel) {
                        return Ok(out.cancelled());
                    }
                    retries += 1;
                }
            }
        }
    }
}

/// The wait before retry `retry` (0-based): [`BACKOFF_BASE`] doubling, at most [`MAX_WAIT`].
fn backoff(retry: u32) -> Duration {
    BACKOFF_BASE.saturating_mul(1 << retry.min(16)).min(MAX_WAIT)
}

/// Sleeps `pause` unless `cancel` is set first; false when cancelled.
fn sleep(pause: Duration, cancel: &Cancel) -> bool {
    let end = Instant::now() + pause;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(TICK));
    }
}

fn silent_message(options: &OpenAiOptions, waiting_for: &str) -> String {
    format!("no answer: waited for {waiting_for} longer than read_timeout_ms = {} ms", options.read_timeout_ms)
}

/// The HTTP threads of one model. A thread that finished its exchange waits for the next one
/// instead of ending: a fresh thread per request costs its start-up and, on a busy machine,
/// a wait for a time slice (p95 of several ms measured); a waiting thread is woken at once.
/// Threads wait only while the model lives (they hold no sender of their own queue; dropping
/// the model drops the senders and ends them), and there are at most as many as requests
/// ever ran at once (a thread still busy with a cancelled exchange is not reused until that
/// ends, at most a read timeout later).
#[derive(Default)]
struct Workers {
    /// One sender per waiting thread; each takes exactly one job.
    idle: Mutex<Vec<Sender<Job>>>,
}

/// An exchange. It returns its last event unsent: the thread sends it only once it is back
/// among the waiting ones, so a caller that learns the exchange ended and sends the next
/// request at once finds the thread waiting instead of starting another.
type Job = Box<dyn FnOnce() -> Option<(Sender<Event>, Event)> + Send>;

impl Workers {
    /// Runs `job` on a waiting thread, or on a new one.
    fn run(self: &Arc<Workers>, mut job: Job) -> std::io::Result<()> {
        loop {
            let waiting = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(tx) = waiting else { break };
            match tx.send(job) {
                Ok(()) => return Ok(()),
                // That thread is gone (it panicked): try the next one.
                Err(mpsc::SendError(back)) => job = back,
            }
        }
        let pool: Weak<Workers> = Arc::downgrade(self);
        std::thread::Builder::new().name("zipp-openai-http".into()).spawn(move || {
            let mut job = job;
            loop {
                let last = job();
                let send_last = move || {
                    if let Some((tx, event)) = last {
                        let _ = tx.send(event);
                    }
                };
                let Some(workers) = pool.upgrade() else { return send_last() };
                let (tx, rx) = mpsc::channel();
                workers.idle.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
                drop(workers);
                send_last();
                // Err: the model was dropped with this thread waiting.
                match rx.recv() {
                    Ok(next) => job = next,
                    Err(_) => return,
                }
            }
        })?;
        Ok(())
    }
}

/// What the HTTP thread reports, in order: a head (or a failure), data, then the end (or a
/// failure).
enum Event {
    Head(Head),
    Data(Vec<u8>),
    End,
    Failed(Failure),
}

struct Head {
    status: u16,
    content_type: Option<String>,
    /// `Retry-After` in seconds (the HTTP-date form is ignored).
    retry_after: Option<Duration>,
    location: Option<String>,
}

/// A transport failure, classified.
struct Failure {
    kind: FailureKind,
    detail: String,
    /// A connection failure: nothing reached the server, a retry is safe.
    retryable: bool,
}

enum FailureKind {
    ConnectTimeout,
    ReadTimeout,
    Other,
}

impl Failure {
    fn from_ureq(e: ureq::Error) -> Failure {
        use std::io::ErrorKind as Io;
        let (kind, retryable) = match &e {
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                (FailureKind::ConnectTimeout, true)
            }
            ureq::Error::Timeout(_) => (FailureKind::ReadTimeout, false),
            ureq::Error::Io(io) if io.kind() == Io::TimedOut || io.kind() == Io::WouldBlock => {
                (FailureKind::ReadTimeout, false)
            }
            ureq::Error::Io(io) => (
                FailureKind::Other,
                matches!(
                    io.kind(),
                    Io::ConnectionRefused
                        | Io::ConnectionReset
                        | Io::ConnectionAborted
                        | Io::NotConnected
                        | Io::BrokenPipe
                        | Io::UnexpectedEof
                        | Io::AddrNotAvailable
                        | Io::HostUnreachable
                        | Io::NetworkUnreachable
                ),
            ),
            ureq::Error::ConnectionFailed => (FailureKind::Other, true),
            _ => (FailureKind::Other, false),
        };
        let detail = match &e {
            ureq::Error::Protocol(p) => format!("the answer is not HTTP/1.1 ({p})"),
            ureq::Error::HostNotFound => "host not found".into(),
            other => other.to_string(),
        };
        Failure { kind, detail, retryable }
    }

    fn message(&self, options: &OpenAiOptions) -> String {
        match self.kind {
            FailureKind::ConnectTimeout => format!(
                "could not connect within connect_timeout_ms = {} ms ({})",
                options.connect_timeout_ms, self.detail
            ),
            FailureKind::ReadTimeout => {
                format!("no answer within read_timeout_ms = {} ms ({})", options.read_timeout_ms, self.detail)
            }
            FailureKind::Other => self.detail.clone(),
        }
    }
}

/// The HTTP thread: sends the request and forwards what comes back until the end, a
/// failure, or the caller hanging up.
/// Returns the last event, not yet sent (see [`Job`]); `None` when the caller hung up.
fn exchange(
    request: ureq::RequestBuilder<ureq::typestate::WithBody>,
    body: String,
    tx: Sender<Event>,
) -> Option<(Sender<Event>, Event)> {
    let response = match request.send(body.as_str()) {
        Ok(r) => r,
        Err(e) => return Some((tx, Event::Failed(Failure::from_ureq(e)))),
    };
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let head = Head {
        status: response.status().as_u16(),
        content_type: header("content-type").map(|t| t.to_ascii_lowercase()),
        retry_after: header("retry-after").and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs),
        location: header("location"),
    };
    tx.send(Event::Head(head)).ok()?;
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Some((tx, Event::End)),
            Ok(n) => tx.send(Event::Data(buf[..n].to_vec())).ok()?,
            Err(e) => return Some((tx, Event::Failed(Failure::from_ureq(ureq::Error::from(e))))),
        }
    }
}

enum Wait {
    Event(Event),
    Cancelled,
    /// Nothing arrived within the watchdog limit.
    Silent,
    /// The HTTP thread ended without a last event (a panic in it).
    Gone,
}

/// The next event, checking `cancel` every [`TICK`].
fn wait(rx: &Receiver<Event>, cancel: &Cancel, limit: Duration) -> Wait {
    let start = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return Wait::Cancelled;
        }
        match rx.recv_timeout(TICK) {
            Ok(event) => return Wait::Event(event),
            Err(RecvTimeoutError::Disconnected) => return Wait::Gone,
            Err(RecvTimeoutError::Timeout) if start.elapsed() > limit => return Wait::Silent,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Why reading a body stopped before its end.
enum Stop {
    Cancelled,
    Silent,
    Failed(Failure),
}

/// The body's bytes as the HTTP thread forwards them.
struct BodyReader<'a> {
    rx: &'a Receiver<Event>,
    cancel: &'a Cancel,
    limit: Duration,
    received: usize,
}

impl BodyReader<'_> {
    /// The next bytes, `None` at the end.
    fn next(&mut self) -> std::result::Result<Option<Vec<u8>>, Stop> {
        match wait(self.rx, self.cancel, self.limit) {
            Wait::Event(Event::Data(bytes)) => {
                self.received += bytes.len();
                Ok(Some(bytes))
            }
            Wait::Event(Event::End) => Ok(None),
            Wait::Event(Event::Failed(f)) => Err(Stop::Failed(f)),
            Wait::Event(Event::Head(_)) | Wait::Gone => Err(Stop::Failed(Failure {
                kind: FailureKind::Other,
                detail: "the HTTP thread ended unexpectedly".into(),
                retryable: false,
            })),
            Wait::Cancelled => Err(Stop::Cancelled),
            Wait::Silent => Err(Stop::Silent),
        }
    }
}

enum Attempt {
    /// The answer is complete (or a stop sequence ended it).
    Done,
    Cancelled,
    /// Retryable (429, 5xx, connection failure), with the server's `Retry-After`.
    Retry {
        error: Error,
        after: Option<Duration>,
    },
    Failed(Error),
}

/// The text so far: stop sequences applied, stable text streamed to `on_text`.
struct Output<'a> {
    stop: &'a [String],
    longest_stop: usize,
    on_text: &'a mut (dyn FnMut(&str) + Send),
    text: String,
    /// Bytes of `text` passed to `on_text`.
    emitted: usize,
    finish: Finish,
    usage: Option<Usage>,
    /// Content-bearing stream chunks (the completion-token count when the server sends no
    /// usage: servers stream one token per chunk).
    chunks: usize,
}

impl<'a> Output<'a> {
    fn new(stop: &'a [String], on_text: &'a mut (dyn FnMut(&str) + Send)) -> Output<'a> {
        let longest_stop = stop.iter().map(String::len).max().unwrap_or(0);
        Output {
            stop,
            longest_stop,
            on_text,
            text: String::new(),
            emitted: 0,
            finish: Finish::EndOfTurn,
            usage: None,
            chunks: 0,
        }
    }

    /// Appends a piece; true when a stop sequence ended the text.
    fn push(&mut self, piece: &str) -> bool {
        let before = self.text.len();
        self.text.push_str(piece);
        // A stop sequence not found before ends inside the new piece: it starts at most
        // `longest_stop` bytes before it.
        let mut from = before.saturating_sub(self.longest_stop);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let found = self.stop.iter().filter_map(|s| self.text[from..].find(s.as_str()).map(|at| from + at)).min();
        if let Some(at) = found {
            // Text before `emitted` never holds the start of a stop sequence (stable_len).
            self.text.truncate(at.max(self.emitted));
            self.finish = Finish::StopSequence;
            return true;
        }
        let stable = stable_len(&self.text, self.stop);
        if stable > self.emitted {
            (self.on_text)(&self.text[self.emitted..stable]);
            self.emitted = stable;
        }
        false
    }

    /// The finish the server reported (unless a stop sequence found here already set it).
    fn server_finish(&mut self, reason: Option<&str>, stop_reason: Option<&Value>) {
        if self.finish == Finish::StopSequence {
            return;
        }
        let named_stop = stop_reason.and_then(Value::as_str).is_some_and(|s| self.stop.iter().any(|t| t == s));
        self.finish = match reason {
            Some("length") => Finish::MaxTokens,
            _ if named_stop => Finish::StopSequence,
            _ => Finish::EndOfTurn,
        };
    }

    /// The generation, the held-back rest of the text passed on.
    fn finish(mut self) -> Generation {
        if self.text.len() > self.emitted {
            (self.on_text)(&self.text[self.emitted..]);
        }
        let (prompt_tokens, completion_tokens) = match &self.usage {
            Some(u) => (u.prompt_tokens, u.completion_tokens),
            None => (0, self.chunks),
        };
        Generation { text: std::mem::take(&mut self.text), prompt_tokens, completion_tokens, finish: self.finish }
    }

    /// The generation of a cancelled call: what `on_text` received.
    fn cancelled(mut self) -> Generation {
        self.text.truncate(self.emitted);
        let completion_tokens = self.usage.as_ref().map_or(self.chunks, |u| u.completion_tokens);
        Generation {
            text: std::mem::take(&mut self.text),
            prompt_tokens: self.usage.as_ref().map_or(0, |u| u.prompt_tokens),
            completion_tokens,
            finish: Finish::Cancelled,
        }
    }
}

/// The JSON body of a request.
#[derive(Serialize)]
struct RequestBody<'a> {
    model: &'a str,
    messages: &'a [Message],
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    max_tokens: usize,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    seed: u64,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repeat_penalty: Option<f32>,
}

/// A whole completion; fields not listed are ignored (servers add their own).
#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    stop_reason: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

/// One streamed chunk. Some carry no `choices` (a final usage chunk); some an empty list.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<ChunkChoice>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    stop_reason: Option<Value>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
}

/// A server-sent-events parser: bytes in, the `data` of each complete event out.
#[derive(Default)]
struct Sse {
    /// Bytes of an incomplete line.
    partial: Vec<u8>,
    /// The data lines of the event being read.
    data: Option<String>,
    /// Lines read (for messages).
    lines: usize,
    /// Events handed out (for messages).
    count: usize,
}

impl Sse {
    /// Feeds bytes; appends the data of every event they complete to `events`. An error
    /// says why the bytes are not an event stream.
    fn push(&mut self, bytes: &[u8], events: &mut Vec<String>) -> std::result::Result<(), String> {
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let line_bytes: &[u8] = if self.partial.is_empty() {
                &rest[..nl]
            } else {
                self.partial.extend_from_slice(&rest[..nl]);
                &self.partial
            };
            let line_bytes = line_bytes.strip_suffix(b"\r").unwrap_or(line_bytes);
            self.lines += 1;
            let line = std::str::from_utf8(line_bytes)
                .map_err(|_| format!("line {} is not UTF-8: {}", self.lines, quote(line_bytes)))?;
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(data);
                }
            } else if !line.starts_with(':') {
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "data" => match &mut self.data {
                        Some(data) => {
                            data.push('\n');
                            data.push_str(value);
                        }
                        None => self.data = Some(value.to_owned()),
                    },
                    "event" | "id" | "retry" => {}
                    _ => return Err(format!("line {} is not an SSE field: {}", self.lines, quote(line.as_bytes()))),
                }
            }
            self.partial.clear();
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_ANSWER_BYTES {
            return Err(format!("a line is longer than {MAX_ANSWER_BYTES} bytes"));
        }
        Ok(())
    }
}

/// The message in a server's error body: `{"error": {"message": …}}`, `{"error": "…"}`,
/// `{"detail": …}` (FastAPI), `{"message": …}`, else the body itself; one line, at most
/// [`MESSAGE_CHARS`] characters.
fn server_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v.get("error").or_else(|| v.get("detail")).or_else(|| v.get("message")) {
            Some(e) => error_text(e),
            None => v.to_string(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    shorten(&text)
}

/// The text of an `error` value: its `message` if it has one, else the value.
fn error_text(error: &Value) -> String {
    let text = match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    };
    shorten(&text)
}

/// One line (whitespace runs and control characters become one space), at most
/// [`MESSAGE_CHARS`] characters.
fn shorten(text: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        for c in (!out.is_empty()).then_some(' ').into_iter().chain(word.chars()) {
            if chars == MESSAGE_CHARS {
                out.push('…');
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
}

/// The start of some bytes, quoted, for an error message.
fn quote(bytes: &[u8]) -> String {
    format!("`{}`", shorten(&String::from_utf8_lossy(&bytes[..bytes.len().min(4 * MESSAGE_CHARS)])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zipp_core::error::ErrorKind;

    fn invalid(o: OpenAiOptions) -> String {
        let e = o.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        e.to_string()
    }

    #[test]
    fn options_have_defaults_and_are_strict() {
        let o = OpenAiOptions::from_json(r#"{"base_url": "http://127.0.0.1:8080/v1/", "model": "m"}"#).unwrap();
        assert_eq!(o, OpenAiOptions::new("http://127.0.0.1:8080/v1/", "m"));
        assert_eq!((o.connect_timeout_ms, o.read_timeout_ms, o.max_retries, o.stream), (10_000, 120_000, 2, true));
        assert_eq!(endpoint(&o.base_url).unwrap(), "http://127.0.0.1:8080/v1/chat/completions");
        let e = OpenAiOptions::from_json(r#"{"base_url": "http://h/v1", "model": "m", "api_key": "x"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema);
        let e = OpenAiOptions::from_json(r#"{"base_url": "http://h/v1"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
        let back: OpenAiOptions = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn each_bad_option_is_named() {
        let ok = || OpenAiOptions::new("http://localhost:11434/v1", "llama3");
        ok().validate().unwrap();
        let https = invalid(OpenAiOptions { base_url: "https://api.openai.com/v1".into(), ..ok() });
        assert!(
            https.contains("openai.base_url") && https.contains("without TLS") && https.contains("proxy"),
            "{https}"
        );
        assert!(invalid(OpenAiOptions { base_url: "ftp://h/v1".into(), ..ok() }).contains("http://"));
        assert!(invalid(OpenAiOptions { base_url: "http://".into(), ..ok() }).contains("openai.base_url"));
        assert!(invalid(OpenAiOptions { base_url: "http://h/v1?x=1".into(), ..ok() }).contains("query"));
        assert!(invalid(OpenAiOptions { base_url: "http://h /v1".into(), ..ok() }).contains("whitespace"));
        let creds = invalid(OpenAiOptions { base_url: "http://me:hunter2@h/v1".into(), ..ok() });
        assert!(creds.contains("credentials") && !creds.contains("hunter2"), "{creds}");
        assert!(invalid(OpenAiOptions { model: " ".into(), ..ok() }).contains("openai.model"));
        let key = invalid(OpenAiOptions { api_key_env: Some("sk-secret-123".into()), ..ok() });
        assert!(key.contains("openai.api_key_env") && !key.contains("sk-secret"), "{key}");
        assert!(invalid(OpenAiOptions { connect_timeout_ms: 0, ..ok() }).contains("connect_timeout_ms"));
        assert!(invalid(OpenAiOptions { read_timeout_ms: 3_600_001, ..ok() }).contains("read_timeout_ms"));
        assert!(invalid(OpenAiOptions { max_retries: MAX_RETRIES_LIMIT + 1, ..ok() }).contains("max_retries"));
        OpenAiOptions { api_key_env: Some("_MY_KEY2".into()), max_retries: MAX_RETRIES_LIMIT, ..ok() }
            .validate()
            .unwrap();
    }

    #[test]
    fn a_missing_key_variable_is_named_and_the_key_never_shows() {
        let o = OpenAiOptions {
            api_key_env: Some("ZIPP_TEST_SURELY_UNSET_VARIABLE".into()),
            ..OpenAiOptions::new("http://127.0.0.1:9/v1", "m")
        };
        let e = OpenAiModel::new(o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("`ZIPP_TEST_SURELY_UNSET_VARIABLE` is not set"), "{e}");
        let model = OpenAiModel {
            key: Some(ApiKey("sk-very-secret".into())),
            ..OpenAiModel::new(OpenAiOptions::new("http://127.0.0.1:9/v1", "m")).unwrap()
        };
        assert!(!format!("{model:?}").contains("sk-very-secret"));
        let e = model.error(Some(401), "Incorrect API key provided: sk-very-secret.");
        assert!(!e.to_string().contains("sk-very-secret") && e.to_string().contains("<redacted>"), "{e}");
        assert_eq!(e.kind(), ErrorKind::Remote);
        assert_eq!(model.id(), "openai:m@http://127.0.0.1:9/v1");
    }

    #[test]
    fn the_request_carries_sampling_and_extra_fields_only_when_set() {
        let model = OpenAiModel::new(OpenAiOptions::new("http://127.0.0.1:9/v1", "m")).unwrap();
        let s = Sampling { temperature: 0.7, seed: 42, max_tokens: 9, ..Sampling::default() };
        let body: Value = serde_json::from_str(&model.request_body(&[Message::user("hi")], &s).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.7,
                               "max_tokens": 9, "seed": 42, "stream": true})
        );
        let stop: Vec<String> = (0..6).map(|i| format!("S{i}")).collect();
        let s = Sampling { top_k: Some(40), top_p: Some(0.9), repeat_penalty: 1.1, stop, ..Sampling::default() };
        let body: Value = serde_json::from_str(&model.request_body(&[Message::user("hi")], &s).unwrap()).unwrap();
        assert_eq!(body["top_k"], 40);
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["repeat_penalty"], 1.1);
        assert_eq!(body["stop"], serde_json::json!(["S0", "S1", "S2", "S3"]));
    }

    #[test]
    fn sse_events_split_across_reads_and_lines() {
        let mut sse = Sse::default();
        let mut events = Vec::new();
        let stream =
            b": keep-alive\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata: one\ndata: two\n\nid: 3\ndata: [DONE]\n\n";
        for piece in stream.chunks(3) {
            sse.push(piece, &mut events).unwrap();
        }
        assert_eq!(events, ["{\"a\":1}", "one\ntwo", "[DONE]"]);
        let e = Sse::default().push(b"<!DOCTYPE html>\n<html>\n", &mut events).unwrap_err();
        assert!(e.contains("line 1") && e.contains("<!DOCTYPE html>"), "{e}");
        assert!(Sse::default().push(b"data: \xff\xfe\n", &mut events).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn server_messages_are_found_and_cut() {
        assert_eq!(server_message(br#"{"error": {"message": "bad key", "type": "auth"}}"#), "bad key");
        assert_eq!(server_message(br#"{"error": "overloaded"}"#), "overloaded");
        assert_eq!(server_message(br#"{"detail": "Not Found"}"#), "Not Found");
        assert_eq!(
            server_message(b"<html>\n  <body>502  Bad Gateway</body>\n</html>"),
            "<html> <body>502 Bad Gateway</body> </html>"
        );
        let long = server_message("x".repeat(1000).as_bytes());
        assert_eq!(long.chars().count(), MESSAGE_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(server_message(b""), "");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(1000));
        assert_eq!(backoff(10), MAX_WAIT);
        assert_eq!(backoff(u32::MAX), MAX_WAIT);
        let cancel = Cancel::new();
        cancel.cancel();
        let t = Instant::now();
        assert!(!sleep(Duration::from_secs(5), &cancel));
        assert!(t.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn output_holds_back_stop_prefixes_and_cuts_at_the_stop() {
        let stop = vec!["END".to_string(), "\n\n".to_string()];
        let mut seen = Vec::new();
        let mut on_text = |s: &str| seen.push(s.to_string());
        let mut out = Output::new(&stop, &mut on_text);
        assert!(!out.push("Hello E"));
        assert!(!out.push("N"));
        assert!(out.push("Dgame"));
        let g = out.finish();
        assert_eq!((g.text.as_str(), g.finish), ("Hello ", Finish::StopSequence));
        assert_eq!(seen.concat(), "Hello ");

        let mut seen = Vec::new();
        let mut on_text = |s: &str| seen.push(s.to_string());
        let mut out = Output::new(&stop, &mut on_text);
        out.push("a\n");
        out.server_finish(Some("length"), None);
        let g = out.finish();
        assert_eq!((g.text.as_str(), g.finish), ("a\n", Finish::MaxTokens));
        assert_eq!(seen, ["a", "\n"]);

        let mut on_text = |_: &str| {};
        let mut out = Output::new(&stop, &mut on_text);
        out.push("x");
        out.server_finish(Some("stop"), Some(&Value::String("END".into())));
        assert_eq!(out.finish().finish, Finish::StopSequence);
    }
}
