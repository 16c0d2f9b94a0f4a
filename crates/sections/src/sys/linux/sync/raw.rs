//! The kernel and C-library pieces of the Linux sync objects: a
//! process-shared robust pthread mutex (the robust-futex list belongs to
//! the C library, so the mutex is its), and shared futex words (also what
//! the channel's waker sleeps on).

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use rustix::thread::futex;

/// Bytes a `pthread_mutex_t` takes.
pub(crate) const MUTEX_SIZE: usize = std::mem::size_of::<libc::pthread_mutex_t>();

/// How a lock attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockState {
    Acquired,
    /// Acquired, but the previous owner died holding it (`EOWNERDEAD`).
    OwnerDied,
    TimedOut,
}

extern "C" {
    /// glibc 2.30+: like `pthread_mutex_timedlock`, on a chosen clock.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

fn check(rc: libc::c_int) -> io::Result<()> {
    match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Initialises a process-shared, robust, error-checking mutex at `at`.
///
/// # Safety
/// `at` must point to `MUTEX_SIZE` writable, suitably aligned bytes that
/// no process uses yet.
pub(crate) unsafe fn mutex_init(at: *mut u8) -> io::Result<()> {
    // SAFETY: the attribute object is initialised before use and destroyed
    // after; `at` is valid per the contract.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        check(libc::pthread_mutexattr_init(&mut attr))?;
        let result = (|| {
            check(libc::pthread_mutexattr_setpshared(
                &mut attr,
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            check(libc::pthread_mutexattr_setrobust(
                &mut attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))?;
            check(libc::pthread_mutexattr_settype(
                &mut attr,
                libc::PTHREAD_MUTEX_ERRORCHECK,
            ))?;
            check(libc::pthread_mutex_init(at.cast(), &attr))
        })();
        libc::pthread_mutexattr_destroy(&mut attr);
        result
    }
}

fn monotonic_deadline(deadline: Instant) -> libc::timespec {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
    libc::timespec {
        tv_sec: now.tv_sec
            + left.as_secs() as libc::time_t
            + (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}

fn lock_state(rc: libc::c_int) -> io::Result<LockState> {
    match rc {
        0 => Ok(LockState::Acquired),
        libc::EOWNERDEAD => Ok(LockState::OwnerDied),
        libc::ETIMEDOUT | libc::EBUSY => Ok(LockState::TimedOut),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Locks, waiting until `deadline` (monotonic) or for ever.
///
/// # Safety
/// `at` must point to a mutex made by [`mutex_init`] in live shared memory.
pub(crate) unsafe fn mutex_lock(at: *mut u8, deadline: Option<Instant>) -> io::Result<LockState> {
    let rc = match deadline {
        // SAFETY: per the contract.
        None => unsafe { libc::pthread_mutex_lock(at.cast()) },
        Some(deadline) => {
            let abs = monotonic_deadline(deadline);
            // SAFETY: per the contract; `abs` outlives the call.
            unsafe { pthread_mutex_clocklock(at.cast(), libc::CLOCK_MONOTONIC, &abs) }
        }
    };
    lock_state(rc)
}

/// # Safety
/// As [`mutex_lock`].
pub(crate) unsafe fn mutex_try_lock(at: *mut u8) -> io::Result<LockState> {
    // SAFETY: per the contract.
    lock_state(unsafe { libc::pthread_mutex_trylock(at.cast()) })
}

/// # Safety
/// As [`mutex_lock`], and this thread must hold the mutex.
pub(crate) unsafe fn mutex_unlock(at: *mut u8) -> io::Result<()> {
    // SAFETY: per the contract.
    check(unsafe { libc::pthread_mutex_unlock(at.cast()) })
}

/// Marks a mutex whose owner died as consistent again.
///
/// # Safety
/// As [`mutex_unlock`], after [`LockState::OwnerDied`].
pub(crate) unsafe fn mutex_consistent(at: *mut u8) -> io::Result<()> {
    // SAFETY: per the contract.
    check(unsafe { libc::pthread_mutex_consistent(at.cast()) })
}

/// The thread id glibc records as the mutex's owner (0: unlocked). Read
/// for display only; the layout is glibc's `struct __pthread_mutex_s`.
///
/// # Safety
/// `at` must point to `MUTEX_SIZE` readable bytes.
pub(crate) unsafe fn mutex_owner_tid(at: *const u8) -> u32 {
    // SAFETY: `__owner` is the third `int` of the structure; an atomic load
    // because the owner changes it concurrently.
    let owner = unsafe { &*at.add(8).cast::<AtomicU32>() };
    owner.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits while `word == expected`, at most until `deadline`. Returns on a
/// wake-up, a changed value, a signal or the deadline; callers re-check.
pub(crate) fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> io::Result<()> {
    let timeout = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        rustix::fs::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        }
    });
    if timeout
        .as_ref()
        .is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0)
    {
        return Ok(());
    }
    // A shared futex (no FUTEX_PRIVATE_FLAG): the word lives in memory
    // mapped by several processes. The relative timeout is measured on
    // CLOCK_MONOTONIC.
    match futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR | rustix::io::Errno::TIMEDOUT) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Wakes up to `n` waiters of `word` in any process.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> io::Result<()> {
    futex::wake(word, futex::Flags::empty(), n)
        .map(drop)
        .map_err(Into::into)
}

/// The process a thread belongs to (`Tgid` in /proc/TID/status).
pub(crate) fn process_of_thread(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}
