//! The cases the bench's claims and summaries are made of, by id: a suite
//! tags the result of each of these cases with its id, and the claims look
//! results up by id, never by label, so renaming a case cannot silently
//! detach a claim from it (a claim whose case did not run says `-`, and
//! the bench test fails on it).

use serde::Serialize;

/// A case some claim or summary line refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseId {
    // mmap
    ReadScan4K,
    ReadScan64K,
    ReadScan1M,
    ViewReused,
    PrivateResident,
    ChecksumInCache,
    Memcpy1M,
    Pread8,
    ViewLoad8,
    // shared
    SeqReadNamed,
    SeqReadPrivate4K,
    Random8Private4K,
    Random8Named,
    // ipc (round trips at p50, streams in GB/s)
    FloorRtt8,
    ChannelSpinRtt8,
    ChannelSpinRtt4M,
    PipeRtt8,
    UdsRtt8,
    ChannelStream64K,
    UdsStream64K,
    Iceoryx2Rtt8,
    // ipc under load (the channel waits the default way)
    ChannelLoadedRtt8,
    PipeLoadedRtt8,
    UdsLoadedRtt8,
    ChannelLoadedStream64K,
    UdsLoadedStream64K,
    // image
    ImageMapCold,
    ImageReadCold,
    ImageResidentRandom,
    // async
    AsyncStallPlain,
    AsyncStallView,
    AsyncStallFs,
    AsyncScanPlain,
    AsyncScanView,
    AsyncScanFs,
    AsyncChannelRtt8,
    AsyncChannelSpinRtt8,
    AsyncUdsRtt8,
    AsyncChannelStream64K,
    AsyncChannelStream64KCopied,
    AsyncUdsStream64K,
}

impl CaseId {
    /// The `read()` scans, one per buffer size; claims use the best.
    pub const READ_SCANS: [CaseId; 3] =
        [CaseId::ReadScan4K, CaseId::ReadScan64K, CaseId::ReadScan1M];
}
