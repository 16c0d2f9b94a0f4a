//! With `--features peers`: iceoryx2 publish-subscribe round trips between
//! the same two processes, for `channel_rtt_vs_iceoryx2`. Both sides poll
//! (busy-spin), as the channel's busy-spin case does.

use hdrhistogram::Histogram;
use iceoryx2::prelude::*;

use super::ipc::{fail, histogram, rtt_results, spawn, Failure};
use super::runner::CaseResult;

const STOP: u64 = u64::MAX;
const READY: u64 = u64::MAX - 1;

fn services(tag: &str) -> Result<(Node<ipc::Service>, String, String), Failure> {
    let node = NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|e| fail(format!("iceoryx2 node: {e:?}")))?;
    Ok((
        node,
        format!("sect/bench/{tag}/ping"),
        format!("sect/bench/{tag}/pong"),
    ))
}

type Port = iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>;

fn service(node: &Node<ipc::Service>, name: &str) -> Result<Port, Failure> {
    let name: ServiceName = name
        .try_into()
        .map_err(|e| fail(format!("iceoryx2 service name: {e:?}")))?;
    node.service_builder(&name)
        .publish_subscribe::<u64>()
        .open_or_create()
        .map_err(|e| fail(format!("iceoryx2 service: {e:?}")))
}

fn publish(
    publisher: &iceoryx2::port::publisher::Publisher<ipc::Service, u64, ()>,
    v: u64,
) -> Result<(), Failure> {
    let sample = publisher
        .loan_uninit()
        .map_err(|e| fail(format!("iceoryx2 loan: {e:?}")))?;
    sample
        .write_payload(v)
        .send()
        .map_err(|e| fail(format!("iceoryx2 send: {e:?}")))?;
    Ok(())
}

/// The peer: answers every ping with a pong of the same value.
pub fn peer(tag: &str) -> Result<(), Failure> {
    let (node, ping, pong) = services(tag)?;
    let (ping, pong) = (service(&node, &ping)?, service(&node, &pong)?);
    let sub = ping
        .subscriber_builder()
        .create()
        .map_err(|e| fail(format!("iceoryx2 subscriber: {e:?}")))?;
    let publisher = pong
        .publisher_builder()
        .create()
        .map_err(|e| fail(format!("iceoryx2 publisher: {e:?}")))?;
    let send = |v: u64| publish(&publisher, v);
    // Announce until the first ping shows that the other side listens.
    let mut announced = std::time::Instant::now() - std::time::Duration::from_secs(1);
    loop {
        match sub
            .receive()
            .map_err(|e| fail(format!("iceoryx2 receive: {e:?}")))?
        {
            Some(sample) => {
                let v = *sample;
                drop(sample);
                if v == STOP {
                    return Ok(());
                }
                if v != READY {
                    send(v)?;
                }
            }
            None => {
                if announced.elapsed().as_millis() >= 10 {
                    send(READY)?;
                    announced = std::time::Instant::now();
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// Round trips of 8-byte messages against the peer.
pub fn run(count: usize) -> Result<Vec<CaseResult>, Failure> {
    let tag = format!("{}", std::process::id());
    let (node, ping, pong) = services(&tag)?;
    let (ping, pong) = (service(&node, &ping)?, service(&node, &pong)?);
    let sub = pong
        .subscriber_builder()
        .create()
        .map_err(|e| fail(format!("iceoryx2 subscriber: {e:?}")))?;
    let publisher = ping
        .publisher_builder()
        .create()
        .map_err(|e| fail(format!("iceoryx2 publisher: {e:?}")))?;
    let mut child = spawn("iceoryx2", &tag, |_| {})?;
    let send = |v: u64| publish(&publisher, v);
    let recv = || -> Result<u64, Failure> {
        loop {
            if let Some(sample) = sub
                .receive()
                .map_err(|e| fail(format!("iceoryx2 receive: {e:?}")))?
            {
                return Ok(*sample);
            }
            std::hint::spin_loop();
        }
    };
    // The peer announces itself until both sides are connected.
    let started = std::time::Instant::now();
    while recv()? != READY {
        if started.elapsed().as_secs() > 10 {
            return Err(fail("the iceoryx2 peer did not connect"));
        }
    }
    send(READY)?;
    let mut k = 0u64;
    let h: Histogram<u64> = histogram(count, || {
        k += 1;
        send(k)?;
        // Skip announcements still in flight.
        while recv()? != k {}
        Ok(())
    })?;
    send(STOP)?;
    child.wait().map_err(fail)?;
    Ok(rtt_results("iceoryx2 publish-subscribe 8 B", &h))
}
