//! The channel's software cost: one 8-byte send (loan, write, publish) and
//! its receive (look, read, release) in one thread, against the same with
//! `std::sync::mpsc` and through a Unix socket pair, in the same run. A
//! cross-process round trip pays this twice besides the cache-line
//! transfers (`sect bench ipc` measures those). Linux only.
//!
//! Also what connecting costs: opening a sender and the receiver of an
//! existing channel by name (the peer slots' claims included).
//!
//! Run with `cargo bench -p sections --bench channel`.

fn main() {
    #[cfg(target_os = "linux")]
    divan::main();
}

#[cfg(target_os = "linux")]
mod linux {
    use sections::channel::{ChannelOptions, WaitStrategy};

    #[divan::bench(sample_size = 1000)]
    fn channel_send_recv_8b(bencher: divan::Bencher) {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let mut opts = ChannelOptions::new();
        opts.namespace(&sections::Namespace::at(dir.path()))
            .capacity(1 << 20)
            .wait(WaitStrategy::Spin);
        let _channel = opts.create("bench").unwrap();
        let mut tx = opts.open_sender("bench").unwrap();
        let mut rx = opts.open_receiver("bench").unwrap();
        let mut word = [0u8; 8];
        bencher.bench_local(|| {
            let mut loan = tx.loan(8).unwrap();
            loan.write_at(0, divan::black_box(&[7u8; 8])).unwrap();
            loan.send();
            rx.recv().unwrap().read_at(0, &mut word).unwrap();
        });
    }

    /// Open a sender and the receiver of a live channel, then drop them.
    #[divan::bench(sample_size = 10)]
    fn open_sender_and_receiver(bencher: divan::Bencher) {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let mut opts = ChannelOptions::new();
        opts.namespace(&sections::Namespace::at(dir.path()))
            .capacity(64 << 10);
        let _channel = opts.create("bench").unwrap();
        bencher.bench_local(|| {
            let tx = opts.open_sender("bench").unwrap();
            let rx = opts.open_receiver("bench").unwrap();
            drop((tx, rx));
        });
    }

    #[divan::bench(sample_size = 1000)]
    fn std_mpsc_send_recv_8b(bencher: divan::Bencher) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<[u8; 8]>(1024);
        bencher.bench_local(|| {
            tx.send(divan::black_box([7u8; 8])).unwrap();
            divan::black_box(rx.recv().unwrap());
        });
    }

    #[divan::bench(sample_size = 1000)]
    fn unix_socket_send_recv_8b(bencher: divan::Bencher) {
        use std::io::{Read, Write};
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut word = [0u8; 8];
        bencher.bench_local(|| {
            a.write_all(divan::black_box(&[7u8; 8])).unwrap();
            b.read_exact(&mut word).unwrap();
        });
    }
}
