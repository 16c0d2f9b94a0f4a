//! With `--features peers`: iceoryx2 publish-subscribe round trips between
//! the same two processes, for `channel_rtt_vs_iceoryx2`. Both sides poll
//! (busy-spin), as the channel's busy-spin case does.

use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;

use super::cases::CaseId;
use super::latency::{fail, round_trips, rtt_result, spawn, Failure, ROUND_TRIP};
use super::runner::CaseResult;

const STOP: u64 = u64::MAX;
const READY: u64 = u64::MAX - 1;

fn iox(what: &str, e: impl std::fmt::Debug) -> Failure {
    fail(format!("iceoryx2 {what}: {e:?}"))
}

/// One side: a subscriber on `sect/bench/TAG/INBOUND`, a publisher on
/// `sect/bench/TAG/OUTBOUND`.
struct Ports {
    sub: Subscriber<ipc::Service, u64, ()>,
    publisher: Publisher<ipc::Service, u64, ()>,
    _node: Node<ipc::Service>,
}

impl Ports {
    fn connect(tag: &str, inbound: &str, outbound: &str) -> Result<Ports, Failure> {
        let node = NodeBuilder::new()
            .create::<ipc::Service>()
            .map_err(|e| iox("node", e))?;
        let service = |direction: &str| {
            let name: ServiceName = format!("sect/bench/{tag}/{direction}")
                .as_str()
                .try_into()
                .map_err(|e| iox("service name", e))?;
            node.service_builder(&name)
                .publish_subscribe::<u64>()
                .open_or_create()
                .map_err(|e| iox("service", e))
        };
        let sub = service(inbound)?
            .subscriber_builder()
            .create()
            .map_err(|e| iox("subscriber", e))?;
        let publisher = service(outbound)?
            .publisher_builder()
            .create()
            .map_err(|e| iox("publisher", e))?;
        Ok(Ports {
            sub,
            publisher,
            _node: node,
        })
    }

    fn send(&self, v: u64) -> Result<(), Failure> {
        let sample = self.publisher.loan_uninit().map_err(|e| iox("loan", e))?;
        sample.write_payload(v).send().map_err(|e| iox("send", e))?;
        Ok(())
    }

    /// The next value if one has arrived.
    fn poll(&self) -> Result<Option<u64>, Failure> {
        Ok(self
            .sub
            .receive()
            .map_err(|e| iox("receive", e))?
            .map(|sample| *sample))
    }

    /// Spins until a value arrives.
    fn recv(&self) -> Result<u64, Failure> {
        loop {
            if let Some(v) = self.poll()? {
                return Ok(v);
            }
            std::hint::spin_loop();
        }
    }
}

/// The peer: answers every ping with a pong of the same value.
pub fn peer(tag: &str) -> Result<(), Failure> {
    let ports = Ports::connect(tag, "ping", "pong")?;
    // Announce until the first ping shows that the other side listens.
    let mut announced: Option<Instant> = None;
    loop {
        match ports.poll()? {
            Some(STOP) => return Ok(()),
            Some(READY) => {}
            Some(v) => ports.send(v)?,
            None => {
                if announced.is_none_or(|t| t.elapsed() >= Duration::from_millis(10)) {
                    ports.send(READY)?;
                    announced = Some(Instant::now());
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// Round trips of 8-byte messages against the peer.
pub fn run(count: usize, runs: usize) -> Result<Vec<CaseResult>, Failure> {
    let tag = std::process::id().to_string();
    let ports = Ports::connect(&tag, "pong", "ping")?;
    let mut child = spawn("iceoryx2", &tag, |_| {})?;
    // The peer announces itself until both sides are connected.
    let started = Instant::now();
    while ports.poll()? != Some(READY) {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return Err(fail("the iceoryx2 peer did not connect within 10 s"));
        }
        std::hint::spin_loop();
    }
    ports.send(READY)?;
    let mut k = 0u64;
    let h = round_trips(count, runs, || {
        k += 1;
        ports.send(k)?;
        // Skip announcements still in flight.
        while ports.recv()? != k {}
        Ok(())
    })?;
    ports.send(STOP)?;
    child.wait().map_err(fail)?;
    Ok(vec![rtt_result(
        ROUND_TRIP,
        "iceoryx2 publish-subscribe 8 B",
        Some(CaseId::Iceoryx2Rtt8),
        &h,
    )])
}
