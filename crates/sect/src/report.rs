//! What `ls` and `info` show, as a table or as JSON.

use std::collections::HashMap;

use serde::Serialize;

use sections::{EntryInfo, EntryKind, Lifetime, ObjectState, PeerProcess, PidNamespace, Usage};

use crate::units::human;

/// One entry as `ls --json` prints it (and `info --json`, with `maps`).
#[derive(Debug, Serialize)]
pub struct EntryReport {
    pub name: String,
    pub size: u64,
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
    /// For sync objects: "mutex", "event" or "semaphore".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<&'static str>,
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
    pub fn new(
        entry: &EntryInfo,
        usage: &Usage,
        users: &HashMap<u32, String>,
        with_maps: bool,
    ) -> Self {
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
            kind: match entry.kind {
                EntryKind::Memory => "memory",
                EntryKind::File => "file",
            },
            owner_uid: entry.owner_uid,
            owner: users
                .get(&entry.owner_uid)
                .cloned()
                .unwrap_or_else(|| entry.owner_uid.to_string()),
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
            object: None,
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
                report.object = Some("mutex");
                report.held = Some(*held);
                report.holder_pid = holder.map(|p| p.pid);
                report.holder_pid_namespace = holder.map(|p| namespace_label(p.pid_namespace));
            }
            Some(ObjectState::Event { set, manual }) => {
                report.object = Some("event");
                report.set = Some(*set);
                report.manual_reset = Some(*manual);
            }
            Some(ObjectState::Semaphore { count, max }) => {
                report.object = Some("semaphore");
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
                report.object = Some("channel");
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

    /// What the KIND column shows: memory, file, or the sync object's kind.
    pub fn kind_label(&self) -> &'static str {
        self.object.unwrap_or(self.kind)
    }

    /// A short description of a sync object's state, for `info`.
    pub fn object_state(&self) -> Option<String> {
        match self.object? {
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
                    human(self.fill.unwrap_or(0)),
                    human(self.capacity.unwrap_or(0)),
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

/// User names by uid, from `/etc/passwd` (numeric ids where it is missing).
pub fn user_names() -> HashMap<u32, String> {
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
        return HashMap::new();
    };
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
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

pub const LS_HEADER: [&str; 9] = [
    "NAME", "SIZE", "KIND", "OWNER", "MODE", "LIFETIME", "HOLDERS", "RESIDENT", "STATE",
];

pub fn ls_row(r: &EntryReport) -> Vec<String> {
    vec![
        shown(&r.name),
        human(r.size),
        r.kind_label().to_owned(),
        r.owner.clone(),
        r.mode.clone(),
        r.lifetime.to_owned(),
        r.holders.len().to_string(),
        human(r.resident_bytes),
        r.state().to_owned(),
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
