//! The channel's bytes: the header as one `#[repr(C)]` type whose field
//! offsets every other file uses (through the constants below, derived
//! with `offset_of!`), and the two words of a record header.
//!
//! The layout is what peers of this version agree on: changing it means a
//! new [`VERSION`]. The test at the end pins every offset.

use std::mem::{offset_of, size_of};

/// "SECTCHAN", little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SECTCHAN");
/// 2: position words are keyed and a single sender publishes at commit.
/// 3: the reservation lock is a word of this crate's protocol (`lock`),
/// never a C library mutex, and is waited for with the caller's deadline.
/// 4: a peer slot is one owner word (free, closed or the owner's token),
/// claimed under the platform's peer lock (`peers.rs`).
pub(crate) const VERSION: u32 = 5;

/// One sender slot (see `peers.rs` for its states).
#[repr(C)]
pub(crate) struct SlotWords {
    /// Free (0), or the owner's process token (for people; the peer lock
    /// decides who owns the slot).
    pub owner: u64,
    /// Bumped by every claim; records carry its low 16 bits.
    pub generation: u32,
    _pad: u32,
}

/// The header, 512 bytes before the ring; each group of fields that one
/// side writes has a cache line of its own.
#[repr(C)]
pub(crate) struct Header {
    // Line 0, written once at creation.
    pub magic: u64,
    pub version: u32,
    pub capacity: u32,
    pub senders: u32,
    _pad0: u32,
    /// The key position words are stored with (see `ring.rs`).
    pub key: u64,
    _line0: [u8; 32],
    // Line 1: the receiver's.
    pub read: u64,
    _pad1: u64,
    /// Free (0), closed (1: the receiver left) or the receiver's token.
    pub rx_owner: u64,
    _line1: [u8; 40],
    // Line 2: the senders'.
    pub reserve: u64,
    _pad2: u32,
    /// Whether any sender ever connected.
    pub tx_ever: u32,
    _line2: [u8; 48],
    // Lines 3 to 6: sender slots.
    pub slots: [SlotWords; 16],
    // Line 7: sleepers and the reservation lock, written only by a side
    // about to park and by senders taking turns.
    pub rx_waiting: u32,
    pub tx_waiting: u32,
    pub lock: u32,
    _line7: [u8; 48],
    /// Written by nothing but a named channel's bell (`sys::Waker::ring`):
    /// the write is what its watchers are told of.
    pub bell: u32,
}

/// Bytes before the ring.
pub(crate) const HEADER: usize = size_of::<Header>();
pub(crate) const VERSION_AT: usize = offset_of!(Header, version);
pub(crate) const CAPACITY: usize = offset_of!(Header, capacity);
pub(crate) const SENDERS: usize = offset_of!(Header, senders);
pub(crate) const KEY: usize = offset_of!(Header, key);
pub(crate) const READ: usize = offset_of!(Header, read);
pub(crate) const RX_OWNER: usize = offset_of!(Header, rx_owner);
pub(crate) const RESERVE: usize = offset_of!(Header, reserve);
pub(crate) const TX_EVER: usize = offset_of!(Header, tx_ever);
pub(crate) const SLOTS: usize = offset_of!(Header, slots);
pub(crate) const SLOT_SIZE: usize = size_of::<SlotWords>();
pub(crate) const SLOT_OWNER: usize = offset_of!(SlotWords, owner);
pub(crate) const SLOT_GENERATION: usize = offset_of!(SlotWords, generation);
pub(crate) const RX_WAITING: usize = offset_of!(Header, rx_waiting);
pub(crate) const TX_WAITING: usize = offset_of!(Header, tx_waiting);
pub(crate) const LOCK: usize = offset_of!(Header, lock);
#[cfg(test)]
pub(crate) const BELL_WORD: usize = offset_of!(Header, bell);

/// The most sender slots a header has.
pub(crate) const SLOT_COUNT: usize = 16;
const _: () = assert!(HEADER == 512 && SLOTS + SLOT_COUNT * SLOT_SIZE == RX_WAITING);

/// Records are multiples of this, and so is every position.
pub(crate) const RECORD: u64 = 16;

/// The first word of a record header: its length and who wrote it.
///
/// ```text
///  bits   0..32  payload length
///  bit   32      padding to the end of the ring (no payload)
///  bit   33      cancelled (a loan dropped unsent, several senders)
///  bits 40..48   sender slot
///  bits 48..64   the slot's generation (low 16 bits)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub len: u32,
    pub pad: bool,
    pub cancel: bool,
    pub slot: u8,
    pub generation: u16,
}

const PAD: u64 = 1 << 32;
const CANCEL: u64 = 1 << 33;

impl Meta {
    /// A message of `len` bytes from sender `slot` of `generation`.
    pub(crate) fn message(len: u64, slot: u32, generation: u32) -> Meta {
        Meta {
            len: len as u32,
            pad: false,
            cancel: false,
            slot: slot as u8,
            generation: generation as u16,
        }
    }

    /// Padding of `len` bytes after its header, to the end of the ring.
    pub(crate) fn padding(len: u64) -> Meta {
        Meta {
            len: len as u32,
            pad: true,
            cancel: false,
            slot: 0,
            generation: 0,
        }
    }

    /// The bit a cancelled record gets (or-ed into a published word).
    pub(crate) const CANCEL_BIT: u64 = CANCEL;

    pub(crate) fn word(self) -> u64 {
        u64::from(self.len)
            | if self.pad { PAD } else { 0 }
            | if self.cancel { CANCEL } else { 0 }
            | u64::from(self.slot) << 40
            | u64::from(self.generation) << 48
    }

    /// Any word decodes: what the fields claim is checked by the reader.
    pub(crate) fn from_word(word: u64) -> Meta {
        Meta {
            len: word as u32,
            pad: word & PAD != 0,
            cancel: word & CANCEL != 0,
            slot: (word >> 40) as u8,
            generation: (word >> 48) as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets peers of layout version 5 use (4 had no bell: its
    /// peers never ring one, so they are refused).
    #[test]
    fn the_header_keeps_its_offsets() {
        let pinned = [
            (VERSION_AT, 8),
            (CAPACITY, 12),
            (SENDERS, 16),
            (KEY, 24),
            (READ, 64),
            (RX_OWNER, 80),
            (RESERVE, 128),
            (TX_EVER, 140),
            (SLOTS, 192),
            (SLOT_SIZE, 16),
            (SLOT_OWNER, 0),
            (SLOT_GENERATION, 8),
            (RX_WAITING, 448),
            (TX_WAITING, 452),
            (LOCK, 456),
            (BELL_WORD, 508),
            (HEADER, 512),
        ];
        for (i, (got, want)) in pinned.into_iter().enumerate() {
            assert_eq!(got, want, "offset {i}");
        }
    }

    #[test]
    fn meta_words_round_trip() {
        let m = Meta {
            len: 0xdead_beef,
            pad: false,
            cancel: true,
            slot: 15,
            generation: 0xabcd,
        };
        assert_eq!(Meta::from_word(m.word()), m);
        assert_eq!(m.word(), 0xdead_beef | 1 << 33 | 15 << 40 | 0xabcd << 48);
        assert_eq!(Meta::padding(48).word(), 48 | 1 << 32);
        assert_eq!(Meta::message(5, 2, 0x1_0007).word(), 5 | 2 << 40 | 7 << 48);
    }
}
