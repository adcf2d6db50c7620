//! The memory of the server and of the processes it started (the browser engine's
//! Chromium: its browser, renderer, GPU and utility processes), read from `/proc`.
//!
//! Chromium's processes share much of their memory, so each is counted by its
//! proportional set size (PSS: its private pages plus its share of the shared ones);
//! summing their resident sets would count the shared pages once per process.

use serde::Serialize;
use utoipa::ToSchema;

/// What the server and its child processes hold, now.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct MemoryStats {
    /// The server process's resident set.
    pub server_rss_bytes: u64,
    /// The server process's proportional set size.
    pub server_pss_bytes: u64,
    /// Processes the server started, and theirs, down the tree (a running Chromium).
    pub children: usize,
    /// Their proportional set sizes, summed.
    pub children_pss_bytes: u64,
}

/// Reads the figures for this process and its descendants.
#[must_use]
pub fn collect() -> MemoryStats {
    let me = std::process::id();
    let descendants = descendants(me);
    MemoryStats {
        server_rss_bytes: rss_bytes(),
        server_pss_bytes: pss_bytes(me).unwrap_or(0),
        children: descendants.len(),
        children_pss_bytes: descendants.iter().filter_map(|p| pss_bytes(*p)).sum(),
    }
}

/// This process's resident set, from `/proc/self/statm`.
fn rss_bytes() -> u64 {
    let pages: u64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// The `Pss:` line of `/proc/PID/smaps_rollup`, in bytes (none for a process gone, or
/// one this process may not read).
fn pss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Every process below `root` in the process tree (children, theirs, and so on).
fn descendants(root: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push(child);
            stack.push(child);
        }
    }
    found
}

/// The parent of `pid`, from `/proc/PID/stat` (whose second field, the command name in
/// parentheses, may itself hold spaces and parentheses: the fields after its last `)`).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_process_is_counted_with_its_memory() {
        let before = collect();
        assert!(before.server_pss_bytes > 0 && before.server_rss_bytes > 0);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let with = collect();
        let below = descendants(std::process::id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(below.contains(&child.id()), "{below:?}");
        assert!(with.children > before.children, "{with:?} {before:?}");
        assert!(with.children_pss_bytes > before.children_pss_bytes);
    }
}
