//! What `ls` and `info` show, as a table or as JSON.

use std::collections::HashMap;

use serde::Serialize;

use sections::{EntryInfo, EntryKind, Lifetime, ObjectState, PeerProcess, PidNamespace, Usage};

use crate::units::exact;

/// One entry as `ls --json` prints it (and `info --json`, with `maps`).
/// `object` is what the entry is (the table's OBJECT column), `kind` what
/// holds its bytes (KIND): a mutex is `"object": "mutex"`, `"kind":
/// "memory"`.
#[derive(Debug, Serialize)]
pub struct EntryReport {
    pub name: String,
    pub size: u64,
    /// "section", or the object built on it: "mutex", "event",
    /// "semaphore" or "channel".
    pub object: &'static str,
    /// "memory" or "file".
    pub kind: &'static str,
    pub owner_uid: u32,
    pub owner: String,
    pub mode: String,
    pub lifetime: &'static str,
    pub persistent: bool,
    pub stale: bool,
    pub holders: Vec<u32>,
    pub resident_bytes: u64,
    pub file: Option<String>,
    /// For a mutex: whether it is held, and by which process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_pid_namespace: Option<&'static str>,
    /// For an event: whether it is set, and its reset mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_reset: Option<bool>,
    /// For a semaphore: its count and maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// For a channel: ring size, bytes queued, connected peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub senders: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<bool>,
    /// For a channel: the processes its peer slots name (information for
    /// people; a pid from another PID namespace names another process, or
    /// none, here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver_process: Option<ProcessReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_processes: Option<Vec<ProcessReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maps: Option<Vec<MapReport>>,
}

/// A process a channel's peer slot names.
#[derive(Debug, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    /// "ours", "another" or "unknown" (seen from this process).
    pub pid_namespace: &'static str,
}

impl From<&PeerProcess> for ProcessReport {
    fn from(p: &PeerProcess) -> Self {
        ProcessReport {
            pid: p.pid,
            pid_namespace: namespace_label(p.pid_namespace),
        }
    }
}

impl std::fmt::Display for ProcessReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        write!(f, "{}", namespace_note(self.pid_namespace))
    }
}

fn namespace_label(ns: PidNamespace) -> &'static str {
    match ns {
        PidNamespace::Ours => "ours",
        PidNamespace::Another => "another",
        PidNamespace::Unknown => "unknown",
    }
}

/// What follows a pid in text: where it is to be found.
fn namespace_note(label: &str) -> &'static str {
    match label {
        "another" => " in another PID namespace",
        "unknown" => " (PID namespace unknown)",
        _ => "",
    }
}

/// One mapping of the section in one process.
#[derive(Debug, Serialize)]
pub struct MapReport {
    pub pid: u32,
    pub comm: String,
    pub start: u64,
    pub end: u64,
    pub perms: String,
}

impl EntryReport {
    pub fn new(entry: &EntryInfo, usage: &Usage, users: &mut Users, with_maps: bool) -> Self {
        let maps = with_maps.then(|| {
            usage
                .users
                .iter()
                .flat_map(|u| {
                    u.maps.iter().map(move |m| MapReport {
                        pid: u.pid,
                        comm: u.command.clone(),
                        start: m.start,
                        end: m.end,
                        perms: m.perms.clone(),
                    })
                })
                .collect()
        });
        let mut report = EntryReport {
            name: entry.name.clone(),
            size: entry.size,
            object: "section",
            kind: match entry.kind {
                EntryKind::Memory => "memory",
                EntryKind::File => "file",
            },
            owner_uid: entry.owner_uid,
            owner: users.name(entry.owner_uid),
            mode: format!("{:o}", entry.mode),
            lifetime: match entry.lifetime {
                Lifetime::Counted => "counted",
                Lifetime::Persistent => "persistent",
            },
            persistent: entry.lifetime == Lifetime::Persistent,
            stale: entry.stale,
            holders: usage.users.iter().map(|u| u.pid).collect(),
            resident_bytes: usage.resident_bytes.unwrap_or(0),
            file: entry.file.as_ref().map(|p| p.display().to_string()),
            held: None,
            holder_pid: None,
            holder_pid_namespace: None,
            set: None,
            manual_reset: None,
            count: None,
            max: None,
            capacity: None,
            fill: None,
            senders: None,
            receiver: None,
            receiver_process: None,
            sender_processes: None,
            maps,
        };
        match &entry.object {
            Some(ObjectState::Mutex { held, holder }) => {
                report.object = "mutex";
                report.held = Some(*held);
                report.holder_pid = holder.map(|p| p.pid);
                report.holder_pid_namespace = holder.map(|p| namespace_label(p.pid_namespace));
            }
            Some(ObjectState::Event { set, manual }) => {
                report.object = "event";
                report.set = Some(*set);
                report.manual_reset = Some(*manual);
            }
            Some(ObjectState::Semaphore { count, max }) => {
                report.object = "semaphore";
                report.count = Some(*count);
                report.max = Some(*max);
            }
            Some(ObjectState::Channel {
                capacity,
                fill,
                senders,
                receiver,
                receiver_process,
                sender_processes,
            }) => {
                report.object = "channel";
                report.capacity = Some(*capacity);
                report.fill = Some(*fill);
                report.senders = Some(*senders);
                report.receiver = Some(*receiver);
                report.receiver_process = receiver_process.as_ref().map(ProcessReport::from);
                report.sender_processes =
                    Some(sender_processes.iter().map(ProcessReport::from).collect());
            }
            _ => {}
        }
        report
    }

    /// What the LOCKED BY column shows: for a mutex, the process that
    /// holds it (`-` when free); nothing for other objects.
    pub fn locked_by(&self) -> String {
        if self.object != "mutex" {
            return String::new();
        }
        match (self.held, self.holder_pid) {
            (Some(true), Some(pid)) => format!(
                "pid {pid}{}",
                namespace_note(self.holder_pid_namespace.unwrap_or("ours"))
            ),
            (Some(true), None) => "abandoned".to_owned(),
            _ => "-".to_owned(),
        }
    }

    /// A short description of a sync object's or channel's state, for
    /// `info`.
    pub fn object_state(&self) -> Option<String> {
        match self.object {
            "mutex" => Some(match (self.held, self.holder_pid) {
                (Some(true), Some(pid)) => format!(
                    "held by pid {pid}{}",
                    namespace_note(self.holder_pid_namespace.unwrap_or("ours"))
                ),
                (Some(true), None) => "held (by a process that is gone: abandoned)".to_owned(),
                _ => "free".to_owned(),
            }),
            "event" => Some(format!(
                "{}, {}-reset",
                if self.set == Some(true) {
                    "set"
                } else {
                    "not set"
                },
                if self.manual_reset == Some(true) {
                    "manual"
                } else {
                    "auto"
                }
            )),
            "semaphore" => Some(format!(
                "{} of {}",
                self.count.unwrap_or(0),
                self.max.unwrap_or(0)
            )),
            "channel" => {
                let senders = self.senders.unwrap_or(0);
                let mut out = format!(
                    "{} of {} queued, {} sender(s)",
                    exact(self.fill.unwrap_or(0)),
                    exact(self.capacity.unwrap_or(0)),
                    senders,
                );
                let named = self.sender_processes.as_deref().unwrap_or_default();
                if senders > 0 && !named.is_empty() {
                    let list: Vec<String> = named.iter().map(ToString::to_string).collect();
                    out += &format!(" ({})", list.join(", "));
                }
                out += match (self.receiver, &self.receiver_process) {
                    (Some(true), Some(p)) => format!(", receiver connected ({p})"),
                    (Some(true), None) => ", receiver connected".to_owned(),
                    _ => ", receiver not connected".to_owned(),
                }
                .as_str();
                Some(out)
            }
            _ => None,
        }
    }

    pub fn state(&self) -> &'static str {
        if self.stale {
            "stale"
        } else {
            "live"
        }
    }
}

/// User names by uid, from the system's user database (`getpwuid_r`, so
/// NSS sources such as LDAP count too), looked up once per uid; the
/// number where a uid has no name.
#[derive(Debug, Default)]
pub struct Users(HashMap<u32, String>);

impl Users {
    pub fn name(&mut self, uid: u32) -> String {
        self.0
            .entry(uid)
            .or_insert_with(|| user_name(uid).unwrap_or_else(|| uid.to_string()))
            .clone()
    }
}

/// The name of user `uid`, if the user database has one.
#[cfg(unix)]
fn user_name(uid: u32) -> Option<String> {
    // Large enough for a local user; a larger entry (long NSS fields)
    // makes getpwuid_r say ERANGE, and the buffer grows up to LIMIT.
    const LIMIT: usize = 1 << 20;
    let mut buf = vec![0u8; 1024];
    // ERANGE doubles the buffer at most 10 times; EINTR is tried again,
    // but not for ever.
    for _ in 0..32 {
        // SAFETY: passwd is plain data (integers and pointers); all zeros
        // is a valid value, and getpwuid_r overwrites it.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `entry` and `found`
        // are locals, and `buf` is writable for `buf.len()` bytes, which
        // getpwuid_r uses for the strings `entry` points to.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => return None,
            0 => {
                if entry.pw_name.is_null() {
                    return None;
                }
                // SAFETY: on success pw_name points to a NUL-terminated
                // string inside `buf`, which lives (and is not written)
                // until this copy is made.
                let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
                return Some(name.to_string_lossy().into_owned());
            }
            libc::ERANGE if buf.len() < LIMIT => buf.resize(buf.len() * 2, 0),
            libc::EINTR => {}
            _ => return None,
        }
    }
    None
}

/// Windows has no uids; entries are never listed there with one.
#[cfg(not(unix))]
fn user_name(_uid: u32) -> Option<String> {
    None
}

/// Text from outside (a name, a command name, a path) as it is printed:
/// control characters and backslashes escaped, so that no name can move
/// the cursor, clear the screen or fake a line of output.
pub fn shown(text: &str) -> String {
    text.escape_debug().to_string()
}

/// Formats rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// The columns of `sect ls`. OBJECT and KIND are the JSON's `object` and
/// `kind`; HOLDERS counts the processes that hold or map the entry;
/// LOCKED BY names the process that holds a mutex.
pub const LS_HEADER: [&str; 11] = [
    "NAME",
    "SIZE",
    "OBJECT",
    "KIND",
    "OWNER",
    "MODE",
    "LIFETIME",
    "HOLDERS",
    "RESIDENT",
    "STATE",
    "LOCKED BY",
];

pub fn ls_row(r: &EntryReport) -> Vec<String> {
    vec![
        shown(&r.name),
        exact(r.size),
        r.object.to_owned(),
        r.kind.to_owned(),
        shown(&r.owner),
        r.mode.clone(),
        r.lifetime.to_owned(),
        r.holders.len().to_string(),
        exact(r.resident_bytes),
        r.state().to_owned(),
        r.locked_by(),
    ]
}

/// A classic hexdump: offset, 16 bytes in hex, the printable ones as text.
pub fn hexdump_line(offset: u64, bytes: &[u8]) -> String {
    let mut out = format!("{offset:08x} ");
    for i in 0..16 {
        if i == 8 {
            out.push(' ');
        }
        match bytes.get(i) {
            Some(b) => out.push_str(&format!(" {b:02x}")),
            None => out.push_str("   "),
        }
    }
    out.push_str("  |");
    out.extend(bytes.iter().map(|&b| {
        if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '.'
        }
    }));
    out.push('|');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_lines() {
        assert_eq!(
            hexdump_line(16, b"hello, world!\n\0\x7f"),
            "00000010  68 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0a 00 7f  |hello, world!...|"
        );
        assert_eq!(
            hexdump_line(0, b"ab"),
            "00000000  61 62                                             |ab|"
        );
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
    }
}
