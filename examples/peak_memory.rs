//! Shared by the examples that report memory (`#[path]`-included: each is its own binary).

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB; `None` where
/// `/proc/self/status` does not say.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
