//! The agent's main loop on the worker thread: torque on, then one message at
//! a time (with its video) until shutdown, then torque off.
//!
//! The MQTT side ([`crate::ActionInbox`]) runs elsewhere (the MQTT event loop
//! on the Jetson, a task in the harness) and hands jobs over through
//! [`JobSource`], which blocks until a job or shutdown arrives. A shutdown
//! (SIGINT/SIGTERM, the scenario's `stop`) is taken between messages: the
//! sentence in progress finishes first, then torque goes off on all 8 servos.
//!
//! Video (optional): the [`Camera`] records while a message is handled; the
//! clip is uploaded through [`VideoStore`] under
//! `videos/hand_YYYYMMDD_HHMMSS.<ext>` (UTC, from the state clock) and the
//! presigned URL is appended to the cached last letter state, which is
//! published again: the end-of-sentence record the UI shows with the video.
//! A message that spelled no letter gets no clip (the hand did not move).

use twinrig_hal::Clock;

use crate::agent::Model;
use crate::driver::{DriverError, HandDriver, Pause};
use crate::payload::Job;
use crate::state::{StateMessage, StateSink};
use crate::worker::{MessageReport, Worker};

/// Where the worker's next message comes from. Blocks until one is there;
/// `None` means shut down.
pub trait JobSource {
    /// The next message, or `None` to shut down.
    fn next_job(&mut self) -> Option<Job>;
    /// A message has been handled (for logs and the harness's reports).
    fn done(&mut self, report: &MessageReport) {
        let _ = report;
    }
}

/// An encoded clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// File extension without the dot (`gif`, `mp4`).
    pub extension: String,
    /// MIME type for the upload.
    pub content_type: String,
}

/// Records the hand.
pub trait Camera {
    /// Starts a recording.
    fn start(&mut self);
    /// Stops and returns the clip.
    fn stop(&mut self) -> Result<Video, String>;
}

/// Where clips go (S3 on AWS, the object store twin in the harness).
pub trait VideoStore {
    /// Stores `video` under `key` and returns a presigned GET URL for it.
    fn upload(&mut self, key: &str, video: &Video) -> Result<String, String>;
}

/// Camera and store, when the agent records video.
pub struct VideoRig<'a> {
    /// The camera.
    pub camera: &'a mut dyn Camera,
    /// The store.
    pub store: &'a mut dyn VideoStore,
}

/// What a whole service run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSummary {
    /// Messages handled.
    pub messages: u64,
    /// Clips uploaded.
    pub videos: u64,
    /// Torque was switched off at the end.
    pub torque_off: bool,
}

/// Runs the agent until `jobs` says shut down.
pub fn serve<M, D, P, C, S>(
    worker: &mut Worker<M, D, P, C, S>,
    jobs: &mut dyn JobSource,
    mut video: Option<VideoRig<'_>>,
) -> ServiceSummary
where
    M: Model,
    D: HandDriver,
    P: Pause,
    C: Clock,
    S: StateSink,
{
    let mut summary = ServiceSummary::default();
    if let Err(e) = worker.start() {
        publish_driver_error(worker, "torque_on_failed", &e);
    }
    while let Some(job) = jobs.next_job() {
        if let Some(rig) = video.as_mut() {
            rig.camera.start();
        }
        let report = worker.handle(job);
        summary.messages += 1;
        let spelled_letters = report.spelled.iter().any(|s| !s.letters.is_empty());
        if let Some(rig) = video.as_mut() {
            let clip = rig.camera.stop();
            if spelled_letters {
                match clip.and_then(|clip| {
                    let key = video_key(worker.hand.ts(), &clip.extension);
                    rig.store.upload(&key, &clip)
                }) {
                    Ok(url) => {
                        if let Some(StateMessage::Hand(mut last)) = worker.last_state().cloned() {
                            last.video_url = Some(url);
                            worker.publish(StateMessage::Hand(last));
                            summary.videos += 1;
                        }
                    }
                    Err(e) => {
                        let ts = worker.hand.ts();
                        worker.publish(StateMessage::error("video_failed", e, ts));
                    }
                }
            }
        }
        jobs.done(&report);
    }
    match worker.shutdown() {
        Ok(()) => summary.torque_off = true,
        Err(e) => publish_driver_error(worker, "torque_off_failed", &e),
    }
    summary
}

fn publish_driver_error<M, D, P, C, S>(
    worker: &mut Worker<M, D, P, C, S>,
    code: &str,
    e: &DriverError,
) where
    M: Model,
    D: HandDriver,
    P: Pause,
    C: Clock,
    S: StateSink,
{
    let ts = worker.hand.ts();
    worker.publish(StateMessage::error(code, e.to_string(), ts));
}

/// The object key of a clip recorded at unix second `ts`:
/// `videos/hand_YYYYMMDD_HHMMSS.<ext>` (UTC), as the real agent names them.
pub fn video_key(ts: u64, extension: &str) -> String {
    let (date, secs) = (ts / 86_400, ts % 86_400);
    let (y, m, d) = civil_from_days(date);
    format!(
        "videos/hand_{y:04}{m:02}{d:02}_{:02}{:02}{:02}.{extension}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Gregorian (year, month, day) of a day count since 1970-01-01, by the
/// era/day-of-era method (400-year cycles of 146,097 days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::OfflineModel;
    use crate::driver::testing::{Bench, Call};
    use crate::spell::Hand;
    use std::collections::VecDeque;

    #[test]
    fn video_keys_are_utc_stamps() {
        assert_eq!(video_key(0, "gif"), "videos/hand_19700101_000000.gif");
        // 2026-02-08 11:40:50 UTC, the sheet's example state ts.
        assert_eq!(
            video_key(1_770_550_850, "mp4"),
            "videos/hand_20260208_114050.mp4"
        );
        // Leap day, last second of the day.
        assert_eq!(
            video_key(951_868_799, "gif"),
            "videos/hand_20000229_235959.gif"
        );
        assert_eq!(
            video_key(4_102_444_800, "gif"),
            "videos/hand_21000101_000000.gif"
        );
    }

    struct Queue(VecDeque<&'static str>, Vec<u64>);
    impl JobSource for Queue {
        fn next_job(&mut self) -> Option<Job> {
            let text = self.0.pop_front()?;
            Some(Job {
                seq: self.1.len() as u64,
                text: text.into(),
            })
        }
        fn done(&mut self, report: &MessageReport) {
            self.1.push(report.job.seq);
        }
    }

    struct FakeCamera(u32);
    impl Camera for FakeCamera {
        fn start(&mut self) {
            self.0 += 1;
        }
        fn stop(&mut self) -> Result<Video, String> {
            Ok(Video {
                bytes: vec![self.0 as u8],
                extension: "gif".into(),
                content_type: "image/gif".into(),
            })
        }
    }

    #[derive(Default)]
    struct FakeStore(Vec<(String, Vec<u8>)>, bool);
    impl VideoStore for FakeStore {
        fn upload(&mut self, key: &str, video: &Video) -> Result<String, String> {
            if self.1 {
                return Err("bucket unreachable".into());
            }
            self.0.push((key.into(), video.bytes.clone()));
            Ok(format!("https://bucket/{key}?sig"))
        }
    }

    #[test]
    fn serve_spells_in_order_republishes_with_the_url_and_ends_with_torque_off() {
        let bench = Bench::new();
        let hand = Hand::new(bench.driver(), bench.pause(), bench.clock());
        let mut worker = Worker::new(hand, OfflineModel::default(), Vec::new());
        let mut jobs = Queue(VecDeque::from(["HI", "12", "A"]), Vec::new());
        let (mut camera, mut store) = (FakeCamera(0), FakeStore::default());
        let summary = serve(
            &mut worker,
            &mut jobs,
            Some(VideoRig {
                camera: &mut camera,
                store: &mut store,
            }),
        );
        assert_eq!(
            summary,
            ServiceSummary {
                messages: 3,
                videos: 2,
                torque_off: true
            }
        );
        assert_eq!(jobs.1, vec![0, 1, 2]);
        let letters: Vec<(String, Option<String>)> = worker
            .sink
            .iter()
            .map(|m| match m {
                StateMessage::Hand(h) => (h.letter.clone(), h.video_url.clone()),
                StateMessage::Error(e) => (e.error.code.clone(), None),
            })
            .collect();
        // "12" spells nothing: no clip, no republish.
        assert_eq!(letters.len(), 5, "{letters:?}");
        assert_eq!(letters[2].0, "I");
        assert!(
            letters[2]
                .1
                .as_deref()
                .unwrap()
                .contains("videos/hand_19700101_0000")
        );
        assert_eq!(letters[4].0, "A");
        assert!(letters[4].1.is_some());
        assert_eq!(store.0.len(), 2);
        let log = bench.calls();
        assert_eq!(log.first(), Some(&Call::Torque(true)));
        assert_eq!(log.last(), Some(&Call::Torque(false)));
    }

    #[test]
    fn a_failed_upload_publishes_an_error_and_the_service_goes_on() {
        let bench = Bench::new();
        let hand = Hand::new(bench.driver(), bench.pause(), bench.clock());
        let mut worker = Worker::new(hand, OfflineModel::default(), Vec::new());
        let mut jobs = Queue(VecDeque::from(["B", "C"]), Vec::new());
        let (mut camera, mut store) = (FakeCamera(0), FakeStore(Vec::new(), true));
        let summary = serve(
            &mut worker,
            &mut jobs,
            Some(VideoRig {
                camera: &mut camera,
                store: &mut store,
            }),
        );
        assert_eq!(summary.messages, 2);
        assert_eq!(summary.videos, 0);
        let codes: Vec<String> = worker
            .sink
            .iter()
            .filter_map(|m| match m {
                StateMessage::Error(e) => Some(e.error.code.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(codes, vec!["video_failed", "video_failed"]);
    }
}
