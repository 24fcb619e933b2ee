//! 1 MB through a virtual UART at 1 Mbaud between two tasks.
//! Virtual time must be exactly 10.0 s; the figure of merit is wall time.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embedded_io_async::{Read, Write};
use twinrig_sim::uart::{Uart, UartConfig};
use twinrig_sim::{SECONDS, Sim};

const BYTES: usize = 1_000_000;

/// Runs the transfer; returns the virtual time the reader finished at.
fn megabyte_at_one_megabaud() -> u64 {
    let mut sim = Sim::new(7);
    let h = sim.handle();
    let config = UartConfig {
        baud: 1_000_000,
        tx_buffer: 4096,
        rx_buffer: 4096,
        // A DMA/FIFO-threshold receiver, as on ESP32/STM32 (the default of 1 would
        // wake the reader once per byte, which is faithful but not what drivers do).
        // 1000 divides the transfer, so the last wake is the last byte's arrival;
        // with an idle timeout the reader would see the tail that many byte times later.
        rx_wake_threshold: 1000,
        rx_idle_symbols: 0,
        ..UartConfig::default()
    };
    let (a, b, _control) = Uart::pair(&h, "bench", config);
    let (_, mut tx) = a.split();
    let (mut rx, _) = b.split();
    let done = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let d = done.clone();
    let hr = h.clone();
    sim.spawn("writer", async move {
        let chunk = [0x55u8; 4096];
        let mut left = BYTES;
        while left > 0 {
            let n = tx.write(&chunk[..left.min(chunk.len())]).await.unwrap();
            left -= n;
        }
    });
    sim.spawn("reader", async move {
        let mut buf = [0u8; 4096];
        let mut got = 0;
        while got < BYTES {
            got += rx.read(&mut buf).await.unwrap();
        }
        d.set(hr.now());
    });
    sim.run_until(u64::MAX, |_| false).unwrap();
    done.get()
}

fn bench(c: &mut Criterion) {
    let t = megabyte_at_one_megabaud();
    assert_eq!(
        t,
        10 * SECONDS,
        "1 MB at 1 Mbaud 8N1 must take exactly 10 s of virtual time"
    );
    let mut g = c.benchmark_group("uart");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.sample_size(20);
    g.bench_function("1MB_at_1Mbaud", |b| b.iter(megabyte_at_one_megabaud));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
