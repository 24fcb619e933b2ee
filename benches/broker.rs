//! Broker round trip inside a world: one device publishes, another device's
//! subscription receives, through the link model and the embedded rumqttd.
//! Reports wall-clock cost per message for 100,000 messages (target < 20 µs).

use std::cell::Cell;
use std::rc::Rc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twinrig::world::CloudRouter;
use twinrig_hal::{MqttClient, QoS};
use twinrig_sim::net::{LatencyModel, LinkParams, Network};
use twinrig_sim::{MILLIS, Sim};

const MESSAGES: u64 = 100_000;
/// Messages a device publishes per 1 ms tick (a chatty telemetry device).
const PER_TICK: u64 = 50;

fn round_trips() -> u64 {
    let mut sim = Sim::new(3);
    let h = sim.handle();
    let net = Network::new(&h, Box::new(CloudRouter(twinrig_cloud::Broker::new())));
    sim.add_process("broker", net.clone());
    let link = LinkParams {
        latency: LatencyModel::Fixed(2 * MILLIS),
        ..LinkParams::ideal()
    };
    let publisher = net.connect("pub", link.clone()).unwrap();
    let subscriber = net.connect("sub", link).unwrap();
    let received = Rc::new(Cell::new(0u64));
    let r = received.clone();
    let hs = h.clone();
    sim.spawn("sub", async move {
        subscriber
            .subscribe("fleet/+/telemetry", QoS::AtMostOnce)
            .await
            .unwrap();
        loop {
            subscriber.receive().await.unwrap();
            r.set(r.get() + 1);
        }
    });
    sim.spawn("pub", async move {
        hs.sleep(10 * MILLIS).await; // after the subscription is in place
        let payload = br#"{"battery":87,"pose":{"x":1.25,"y":-0.5}}"#;
        for tick in 0..MESSAGES / PER_TICK {
            for _ in 0..PER_TICK {
                publisher
                    .publish("fleet/rvr-1/telemetry", payload, QoS::AtMostOnce)
                    .await
                    .unwrap();
            }
            let _ = tick;
            hs.sleep(MILLIS).await;
        }
    });
    let got = received.clone();
    sim.run_until(u64::MAX, move |_| got.get() == MESSAGES)
        .unwrap();
    received.get()
}

fn bench(c: &mut Criterion) {
    assert_eq!(round_trips(), MESSAGES);
    let mut g = c.benchmark_group("broker");
    g.throughput(Throughput::Elements(MESSAGES));
    g.sample_size(10);
    g.bench_function("100k_publish_to_subscriber", |b| b.iter(round_trips));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
