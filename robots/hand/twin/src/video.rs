//! A video of the simulated Amazing Hand: servo angles sampled in virtual time
//! rendered as an animated GIF.
//!
//! The real agent records the hand with a camera and encodes H.264 MP4 with
//! ffmpeg (reference sheet, section 6). The twin deviates on purpose: it draws
//! a schematic and encodes an animated **GIF** with the `gif` crate, because
//! that is pure Rust (no ffmpeg, no system library), small for flat drawings,
//! and plays in every browser and image viewer, which is all the frontend's
//! `<video>`/link needs. Use [`VIDEO_EXTENSION`] and [`VIDEO_CONTENT_TYPE`]
//! when storing it, not `.mp4`.
//!
//! # Picture
//! A fixed 8-colour palette on a `width` x `height` canvas (default 160x120).
//! The canvas has four columns, one per finger in servo-id order: index
//! (servos 1, 2), middle (3, 4), ring (5, 6; it stands in for the pinky),
//! thumb (7, 8) — the mapping of `robots/hand/agent` (`table.rs`: `angle_1`
//! drives the odd id, `angle_2` the even one). The top three quarters show the
//! hand; the bottom quarter holds 8 bar gauges, one per servo, under its
//! finger's column.
//!
//! - Angles first have [`VideoOptions::offsets_deg`] subtracted: the bus
//!   reports absolute angles, which include each servo's calibrated middle
//!   position; pass the agent's `Calibration` offsets to draw in the table's
//!   frame (default: none).
//! - Each finger is two segments. In the table's frame flexion is `angle_1`
//!   positive with `angle_2` negative (closed = `[90, -90]`, open straight =
//!   `[-35, 35]`), so the renderer uses flexion `f = (a1 - a2) / 2` and side
//!   tilt `s = (a1 + a2) / 2`. The curl `f + 35` (0 when open straight,
//!   clamped to -90..=180) bends the first segment by half of it and the
//!   second by all of it, and `s` (clamped to ±90) tilts the whole finger.
//!   Fingers curl clockwise, the thumb (set lower, at the palm's right)
//!   counter-clockwise, across the palm. A schematic, not an anatomical view.
//! - A gauge's bar goes up from its zero line for a positive angle and down
//!   for a negative one, full scale at ±90° (the frontend's range), clamped.
//!
//! Geometry uses only IEEE-exact arithmetic (sine and cosine are a polynomial
//! of our own, not the platform's libm), so the same frames give the same
//! bytes on every machine, not just on this one.
//!
//! # Timing
//! One GIF frame per sample. A frame is shown from its sample's time until
//! the next sample's; the last one for one sample period, `1 / fps`. GIF
//! delays are whole centiseconds: every frame *boundary* is rounded to the
//! nearest 10 ms from the first sample (half up), and a delay is the
//! difference of two boundaries, so rounding never accumulates: each boundary
//! is within 5 ms of its sample and the total is `round(t_last - t_first) +
//! round(100 / fps)` cs. A sample whose display time rounds to 0 cs would be
//! invisible (and browsers show 0-delay frames for 100 ms), so it is left
//! out; a gap longer than a GIF delay can hold (655.35 s) is split into
//! repeats of the same picture. Browsers also slow frames of 1 cs down, so
//! keep samples at least 20 ms apart (at most 50 fps). The GIF loops forever.

use std::borrow::Cow;

use gif::{DisposalMethod, Encoder, Frame, Repeat};

/// File extension of the videos (no dot).
pub const VIDEO_EXTENSION: &str = "gif";
/// `Content-Type` of the videos.
pub const VIDEO_CONTENT_TYPE: &str = "image/gif";
/// Smallest canvas (enough for 8 gauges of 4 pixels).
pub const MIN_SIZE: (u16, u16) = (32, 24);
/// Largest canvas (bounds memory and time; the frontend shows a thumbnail).
pub const MAX_SIZE: (u16, u16) = (1024, 1024);
/// Highest sample rate: GIF cannot time frames closer than 10 ms.
pub const MAX_FPS: u32 = 100;

/// Angles of the 8 servos at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HandFrame {
    /// Virtual time of the sample, ns.
    pub t_ns: u64,
    /// Present angle of servo `i + 1`, degrees.
    pub deg: [f32; 8],
}

/// How to render.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoOptions {
    /// Canvas width, pixels (default 160).
    pub width: u16,
    /// Canvas height, pixels (default 120).
    pub height: u16,
    /// Sample rate the frames were taken at, frames per second: sets how long
    /// the last frame is shown (default 50, the bus trace's 20 ms period).
    pub fps: u32,
    /// Subtracted from servo `i + 1`'s angle before drawing (its calibrated
    /// middle position, degrees; default 0).
    pub offsets_deg: [f32; 8],
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            width: 160,
            height: 120,
            fps: 50,
            offsets_deg: [0.0; 8],
        }
    }
}

/// Why a video could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VideoError {
    /// Nothing to render.
    #[error("no frames to render")]
    NoFrames,
    /// Canvas outside [`MIN_SIZE`]..=[`MAX_SIZE`].
    #[error(
        "canvas {width}x{height} is outside {}x{}..={}x{}",
        MIN_SIZE.0, MIN_SIZE.1, MAX_SIZE.0, MAX_SIZE.1
    )]
    BadSize {
        /// Width asked for.
        width: u16,
        /// Height asked for.
        height: u16,
    },
    /// Frame rate outside 1..=[`MAX_FPS`].
    #[error("fps {0} is outside 1..={MAX_FPS}")]
    BadFps(u32),
    /// A NaN or infinite angle.
    #[error("frame {frame}: servo {servo} angle is not finite")]
    NonFinite {
        /// Index of the frame.
        frame: usize,
        /// Servo id (1..=8).
        servo: u8,
    },
    /// A NaN or infinite offset.
    #[error("offset of servo {servo} is not finite")]
    NonFiniteOffset {
        /// Servo id (1..=8).
        servo: u8,
    },
    /// Frames must come in time order.
    #[error("frame {frame} at {t_ns} ns comes before the previous frame at {prev_ns} ns")]
    OutOfOrder {
        /// Index of the frame.
        frame: usize,
        /// Its time.
        t_ns: u64,
        /// The previous frame's time.
        prev_ns: u64,
    },
    /// The encoder failed (not expected when writing to memory).
    #[error("GIF encoder: {0}")]
    Encode(String),
}

// The palette: index -> RGB.
const BACKGROUND: u8 = 0;
const PALM: u8 = 1;
const FINGER: u8 = 2;
const JOINT: u8 = 3;
const GAUGE_FRAME: u8 = 4;
const BAR_POSITIVE: u8 = 5;
const BAR_NEGATIVE: u8 = 6;
const ZERO_LINE: u8 = 7;
const PALETTE: [u8; 24] = [
    0x1e, 0x22, 0x2a, // background: dark slate
    0x8a, 0x72, 0x5c, // palm
    0xf0, 0xd2, 0xb4, // finger
    0x50, 0x5a, 0x6e, // joint
    0x5a, 0x64, 0x78, // gauge frame
    0x4c, 0xaf, 0x50, // positive bar (flexion side of angle_1)
    0xe5, 0x73, 0x73, // negative bar
    0xff, 0xff, 0xff, // zero line
];

/// Renders `frames` as an animated GIF (see the module docs for the picture
/// and the timing). Same input, same bytes.
pub fn render_gif(frames: &[HandFrame], opts: &VideoOptions) -> Result<Vec<u8>, VideoError> {
    check(frames, opts)?;
    let (w, h) = (opts.width, opts.height);
    let mut out = Vec::new();
    let encode = |e: gif::EncodingError| VideoError::Encode(e.to_string());
    {
        let mut enc = Encoder::new(&mut out, w, h, &PALETTE).map_err(encode)?;
        enc.set_repeat(Repeat::Infinite).map_err(encode)?;
        let t0 = frames[0].t_ns;
        let boundary = |t: u64| round_cs(t - t0);
        let last_cs = u64::from((100 + opts.fps / 2) / opts.fps).max(1);
        let mut canvas = Canvas::new(w, h);
        for (i, f) in frames.iter().enumerate() {
            let start = boundary(f.t_ns);
            let end = match frames.get(i + 1) {
                Some(next) => boundary(next.t_ns),
                None => start + last_cs,
            };
            let mut remaining = end - start;
            if remaining == 0 {
                continue;
            }
            canvas.draw(&f.deg, &opts.offsets_deg);
            let mut frame = Frame {
                width: w,
                height: h,
                dispose: DisposalMethod::Keep,
                buffer: Cow::Borrowed(&canvas.px),
                ..Frame::default()
            };
            while remaining > 0 {
                let delay = remaining.min(u64::from(u16::MAX));
                frame.delay = delay as u16; // <= u16::MAX by the line above
                enc.write_frame(&frame).map_err(encode)?;
                remaining -= delay;
            }
        }
        enc.into_inner().map_err(encode)?;
    }
    Ok(out)
}

fn check(frames: &[HandFrame], opts: &VideoOptions) -> Result<(), VideoError> {
    if !(MIN_SIZE.0..=MAX_SIZE.0).contains(&opts.width)
        || !(MIN_SIZE.1..=MAX_SIZE.1).contains(&opts.height)
    {
        return Err(VideoError::BadSize {
            width: opts.width,
            height: opts.height,
        });
    }
    if !(1..=MAX_FPS).contains(&opts.fps) {
        return Err(VideoError::BadFps(opts.fps));
    }
    if let Some(i) = opts.offsets_deg.iter().position(|o| !o.is_finite()) {
        return Err(VideoError::NonFiniteOffset { servo: i as u8 + 1 });
    }
    if frames.is_empty() {
        return Err(VideoError::NoFrames);
    }
    let mut prev = frames[0].t_ns;
    for (i, f) in frames.iter().enumerate() {
        if let Some(s) = f.deg.iter().position(|d| !d.is_finite()) {
            return Err(VideoError::NonFinite {
                frame: i,
                servo: s as u8 + 1,
            });
        }
        if f.t_ns < prev {
            return Err(VideoError::OutOfOrder {
                frame: i,
                t_ns: f.t_ns,
                prev_ns: prev,
            });
        }
        prev = f.t_ns;
    }
    Ok(())
}

/// `ns` in centiseconds, rounded to nearest (half up), without overflow.
fn round_cs(ns: u64) -> u64 {
    const CS: u64 = 10_000_000;
    ns / CS + u64::from(ns % CS >= CS / 2)
}

/// `(sin, cos)` of `deg` degrees from + and * only (Taylor series on
/// [-45°, 45°] after exact range reduction): libm's results may differ in the
/// last bit between platforms, and a different bit can move a pixel.
fn sin_cos_deg(deg: f64) -> (f64, f64) {
    let d = deg.rem_euclid(360.0);
    let quadrant = ((d + 45.0) / 90.0).floor();
    let x = (d - 90.0 * quadrant) * (std::f64::consts::PI / 180.0);
    let x2 = x * x;
    let s = x * (1.0 - x2 / 6.0 * (1.0 - x2 / 20.0 * (1.0 - x2 / 42.0 * (1.0 - x2 / 72.0))));
    let c = 1.0
        - x2 / 2.0 * (1.0 - x2 / 12.0 * (1.0 - x2 / 30.0 * (1.0 - x2 / 56.0 * (1.0 - x2 / 90.0))));
    match quadrant as i32 {
        0 | 4 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// One picture, as palette indices, reused from frame to frame.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: u16, h: u16) -> Canvas {
        let (w, h) = (usize::from(w), usize::from(h));
        Canvas {
            w,
            h,
            px: vec![BACKGROUND; w * h],
        }
    }

    /// Fills the pixels whose centres lie in `[x0, x1) x [y0, y1)`.
    fn rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, colour: u8) {
        let (xa, xb) = (self.col(x0), self.col(x1));
        let (ya, yb) = (self.row(y0), self.row(y1));
        if xa >= xb {
            return; // empty (a gauge on the narrowest canvas has no inside)
        }
        for y in ya..yb {
            self.px[y * self.w + xa..y * self.w + xb].fill(colour);
        }
    }

    /// First pixel column whose centre is at or right of `x`, clamped to the canvas.
    fn col(&self, x: f64) -> usize {
        ((x - 0.5).ceil().max(0.0) as usize).min(self.w)
    }

    fn row(&self, y: f64) -> usize {
        ((y - 0.5).ceil().max(0.0) as usize).min(self.h)
    }

    /// A segment `radius` thick with round ends (a capsule).
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), radius: f64, colour: u8) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let r2 = radius * radius;
        let xa = self.col(a.0.min(b.0) - radius);
        let xb = self.col(a.0.max(b.0) + radius);
        let ya = self.row(a.1.min(b.1) - radius);
        let yb = self.row(a.1.max(b.1) + radius);
        for y in ya..yb {
            let py = y as f64 + 0.5;
            for x in xa..xb {
                let px = x as f64 + 0.5;
                let t = if len2 > 0.0 {
                    (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (ex, ey) = (a.0 + t * dx - px, a.1 + t * dy - py);
                if ex * ex + ey * ey <= r2 {
                    self.px[y * self.w + x] = colour;
                }
            }
        }
    }

    fn draw(&mut self, deg: &[f32; 8], offsets: &[f32; 8]) {
        self.px.fill(BACKGROUND);
        let (w, h) = (self.w as f64, self.h as f64);
        let gauge_h = (h / 4.0).floor().max(8.0);
        let hand_h = h - gauge_h;
        let col_w = w / 4.0;
        let angle = |i: usize| f64::from(deg[i]) - f64::from(offsets[i]);

        let palm_top = hand_h * 0.62;
        self.rect(col_w * 0.15, palm_top, col_w * 2.85, hand_h * 0.96, PALM);

        let thick = (w.min(h) / 40.0).max(1.0);
        for finger in 0..4 {
            let (a1, a2) = (angle(2 * finger), angle(2 * finger + 1));
            let curl = ((a1 - a2) / 2.0 + 35.0).clamp(-90.0, 180.0);
            let tilt = ((a1 + a2) / 2.0).clamp(-90.0, 90.0);
            let (base, heading, turn, l1, l2) = if finger < 3 {
                let x = col_w * (finger as f64 + 0.5);
                ((x, palm_top), 0.0, 1.0, hand_h * 0.28, hand_h * 0.22)
            } else {
                // The thumb: lower, pointing up and right, curling across the palm.
                (
                    (col_w * 2.85, hand_h * 0.86),
                    40.0,
                    -1.0,
                    hand_h * 0.22,
                    hand_h * 0.17,
                )
            };
            let step = |from: (f64, f64), dir_deg: f64, len: f64| {
                let (s, c) = sin_cos_deg(dir_deg);
                (from.0 + s * len, from.1 - c * len)
            };
            let knuckle = step(base, heading + tilt + turn * curl / 2.0, l1);
            let tip = step(knuckle, heading + tilt + turn * curl, l2);
            self.segment(base, knuckle, thick, FINGER);
            self.segment(knuckle, tip, thick, FINGER);
            self.segment(base, base, thick * 1.3, JOINT);
            self.segment(knuckle, knuckle, thick * 1.1, JOINT);
        }

        // Gauges: servo i + 1 in slot i, two per finger column.
        let slot_w = w / 8.0;
        let top = hand_h + 1.0;
        let bottom = h - 1.0;
        let mid = ((top + bottom) / 2.0).floor();
        let half = (mid - top - 1.0).max(1.0);
        for i in 0..8 {
            let x0 = (slot_w * i as f64).floor() + 1.0;
            let x1 = (slot_w * (i + 1) as f64).floor() - 1.0;
            self.rect(x0, top, x1, bottom, GAUGE_FRAME);
            self.rect(x0 + 1.0, top + 1.0, x1 - 1.0, bottom - 1.0, BACKGROUND);
            let v = angle(i).clamp(-90.0, 90.0) / 90.0 * half;
            let bar = (v.abs()).round();
            if v > 0.0 {
                self.rect(x0 + 1.0, mid - bar, x1 - 1.0, mid, BAR_POSITIVE);
            } else if v < 0.0 {
                self.rect(x0 + 1.0, mid + 1.0, x1 - 1.0, mid + 1.0 + bar, BAR_NEGATIVE);
            }
            self.rect(x0 + 1.0, mid, x1 - 1.0, mid + 1.0, ZERO_LINE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const OPEN: [f32; 8] = [-35.0, 35.0, -35.0, 35.0, -35.0, 35.0, -35.0, 35.0];
    const CLOSED: [f32; 8] = [90.0, -90.0, 90.0, -90.0, 90.0, -90.0, 90.0, -90.0];

    /// Decoded GIF: (width, height, repeat, [(delay cs, pixels)]).
    type Decoded = (u16, u16, Repeat, Vec<(u16, Vec<u8>)>);

    fn decode(bytes: &[u8]) -> Decoded {
        let mut d = gif::DecodeOptions::new();
        d.set_color_output(gif::ColorOutput::Indexed);
        let mut d = d.read_info(bytes).expect("a valid GIF header");
        let (w, h) = (d.width(), d.height());
        let mut frames = Vec::new();
        while let Some(f) = d.read_next_frame().expect("a valid frame") {
            assert_eq!((f.left, f.top, f.width, f.height), (0, 0, w, h));
            frames.push((f.delay, f.buffer.to_vec()));
        }
        (d.width(), d.height(), d.repeat(), frames)
    }

    /// Every 20 ms from `start`, moving linearly from OPEN to CLOSED.
    fn sweep(n: usize, start: u64) -> Vec<HandFrame> {
        (0..n)
            .map(|i| {
                let k = i as f32 / (n - 1).max(1) as f32;
                let mut deg = [0.0; 8];
                for (s, d) in deg.iter_mut().enumerate() {
                    *d = OPEN[s] + (CLOSED[s] - OPEN[s]) * k;
                }
                HandFrame {
                    t_ns: start + i as u64 * 20 * MS,
                    deg,
                }
            })
            .collect()
    }

    #[test]
    fn output_decodes_with_size_frames_and_total_delay() {
        let frames = sweep(25, 3_000 * MS);
        let bytes = render_gif(&frames, &VideoOptions::default()).unwrap();
        assert_eq!(&bytes[..6], b"GIF89a");
        let (w, h, repeat, decoded) = decode(&bytes);
        assert_eq!((w, h), (160, 120));
        assert_eq!(repeat, Repeat::Infinite);
        assert_eq!(decoded.len(), 25);
        assert!(decoded.iter().all(|(d, _)| *d == 2));
        // 24 gaps of 20 ms plus the last frame's 1/50 s.
        let total: u32 = decoded.iter().map(|(d, _)| u32::from(*d)).sum();
        assert_eq!(total, 50);
        assert!(decoded.iter().all(|(_, px)| px.len() == 160 * 120));
        assert!(
            decoded[0]
                .1
                .iter()
                .all(|&p| (p as usize) < PALETTE.len() / 3)
        );
    }

    #[test]
    fn different_angles_give_different_pixels_and_same_input_same_bytes() {
        let opts = VideoOptions::default();
        let one = |deg| render_gif(&[HandFrame { t_ns: 0, deg }], &opts).unwrap();
        let open = decode(&one(OPEN)).3.remove(0).1;
        let closed = decode(&one(CLOSED)).3.remove(0).1;
        let changed = open.iter().zip(&closed).filter(|(a, b)| a != b).count();
        assert!(changed > 200, "only {changed} pixels differ");
        // One servo, a few degrees: still visible (its gauge at least).
        let mut nudged = OPEN;
        nudged[6] += 10.0;
        let nudged = decode(&one(nudged)).3.remove(0).1;
        assert_ne!(nudged, open);
        // Deterministic.
        let frames = sweep(10, 0);
        assert_eq!(
            render_gif(&frames, &opts).unwrap(),
            render_gif(&frames, &opts).unwrap()
        );
    }

    #[test]
    fn each_finger_moves_its_own_column() {
        let opts = VideoOptions::default();
        let render = |deg| {
            decode(&render_gif(&[HandFrame { t_ns: 0, deg }], &opts).unwrap())
                .3
                .remove(0)
                .1
        };
        let base = render(OPEN);
        let hand_rows = 120 - 30;
        for finger in 0..3 {
            let mut deg = OPEN;
            deg[2 * finger] = 90.0;
            deg[2 * finger + 1] = -90.0;
            let px = render(deg);
            // Above the palm, only this finger's column changes.
            for y in 0..(hand_rows * 62 / 100) {
                for x in 0..160 {
                    if base[y * 160 + x] != px[y * 160 + x] {
                        let column = x / 40;
                        assert!(
                            column == finger || column == finger + 1,
                            "finger {finger} changed pixel ({x},{y})"
                        );
                    }
                }
            }
            assert_ne!(base, px);
        }
    }

    #[test]
    fn gauges_show_sign_and_offsets_shift_the_picture() {
        let opts = VideoOptions::default();
        let render = |deg, opts: &VideoOptions| {
            decode(&render_gif(&[HandFrame { t_ns: 0, deg }], opts).unwrap())
                .3
                .remove(0)
                .1
        };
        let px = render(CLOSED, &opts);
        // Servo 1 (+90) has a positive bar, servo 2 (-90) a negative one.
        let gauge = |px: &[u8], slot: usize, colour: u8| {
            (90..120)
                .flat_map(|y| (slot * 20..slot * 20 + 20).map(move |x| (x, y)))
                .filter(|&(x, y)| px[y * 160 + x] == colour)
                .count()
        };
        assert!(gauge(&px, 0, BAR_POSITIVE) > 0 && gauge(&px, 0, BAR_NEGATIVE) == 0);
        assert!(gauge(&px, 1, BAR_NEGATIVE) > 0 && gauge(&px, 1, BAR_POSITIVE) == 0);
        // Angles that include offsets, with those offsets: the same picture.
        let offsets = [-17.0, 8.0, -16.0, -4.0, -12.0, 10.0, -9.0, 9.0];
        let mut absolute = CLOSED;
        for (a, o) in absolute.iter_mut().zip(offsets) {
            *a += o;
        }
        let with = VideoOptions {
            offsets_deg: offsets,
            ..opts
        };
        assert_eq!(render(absolute, &with), px);
        assert_ne!(render(absolute, &opts), px);
    }

    #[test]
    fn delays_round_per_boundary_without_drift() {
        // 33 ms apart (30 fps): delays alternate 3 and 4 cs, boundaries never drift.
        let frames: Vec<HandFrame> = (0..31)
            .map(|i| HandFrame {
                t_ns: 1_000 * MS + i * 33_333_333,
                deg: OPEN,
            })
            .collect();
        let opts = VideoOptions {
            fps: 30,
            ..VideoOptions::default()
        };
        let (_, _, _, decoded) = decode(&render_gif(&frames, &opts).unwrap());
        assert_eq!(decoded.len(), 31);
        let mut t = 0u32;
        for (i, (d, _)) in decoded.iter().enumerate().take(30) {
            assert!(*d == 3 || *d == 4, "frame {i}: {d}");
            t += u32::from(*d);
            // The boundary after frame i is within 5 ms of sample i + 1.
            let want_ms = (i as f64 + 1.0) * 33.333_333;
            assert!((f64::from(t) * 10.0 - want_ms).abs() <= 5.0, "frame {i}");
        }
        // 30 * 33.3 ms = 1 s = 100 cs, plus the last frame's round(100 / 30) = 3 cs.
        assert_eq!(t, 100);
        assert_eq!(decoded[30].0, 3);
    }

    #[test]
    fn holds_are_one_long_frame_and_invisible_samples_are_dropped() {
        let frames = [
            HandFrame { t_ns: 0, deg: OPEN },
            // 800 ms hold, then two samples 3 ms apart: the first rounds to 0 cs.
            HandFrame {
                t_ns: 800 * MS,
                deg: CLOSED,
            },
            HandFrame {
                t_ns: 803 * MS,
                deg: OPEN,
            },
            // A gap longer than one GIF delay can hold: 70000 cs = 65535 + 4465.
            HandFrame {
                t_ns: 803 * MS + 700 * 1_000 * MS,
                deg: CLOSED,
            },
        ];
        let (_, _, _, decoded) = decode(&render_gif(&frames, &VideoOptions::default()).unwrap());
        let delays: Vec<u16> = decoded.iter().map(|(d, _)| *d).collect();
        assert_eq!(delays, [80, u16::MAX, 4_465, 2]);
        assert_eq!(
            decoded[1].1, decoded[2].1,
            "a split gap repeats its picture"
        );
        assert_eq!(
            decoded[0].1, decoded[1].1,
            "both show OPEN (CLOSED was invisible)"
        );
        assert_ne!(decoded[2].1, decoded[3].1);
        // Equal times are allowed (the later sample wins).
        let same = [
            frames[0],
            HandFrame {
                t_ns: 0,
                ..frames[1]
            },
        ];
        let (_, _, _, decoded) = decode(&render_gif(&same, &VideoOptions::default()).unwrap());
        assert_eq!(decoded.len(), 1);
    }

    #[test]
    fn bad_input_gets_typed_errors() {
        let ok = sweep(3, 0);
        let opts = VideoOptions::default();
        assert_eq!(render_gif(&[], &opts), Err(VideoError::NoFrames));
        for (width, height) in [(0, 120), (160, 0), (31, 120), (160, 23), (1025, 120)] {
            assert_eq!(
                render_gif(
                    &ok,
                    &VideoOptions {
                        width,
                        height,
                        ..opts
                    }
                ),
                Err(VideoError::BadSize { width, height })
            );
        }
        for fps in [0, 101] {
            assert_eq!(
                render_gif(&ok, &VideoOptions { fps, ..opts }),
                Err(VideoError::BadFps(fps))
            );
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut frames = ok.clone();
            frames[2].deg[4] = bad;
            assert_eq!(
                render_gif(&frames, &opts),
                Err(VideoError::NonFinite { frame: 2, servo: 5 })
            );
            let mut offsets_deg = [0.0; 8];
            offsets_deg[7] = bad;
            assert_eq!(
                render_gif(
                    &ok,
                    &VideoOptions {
                        offsets_deg,
                        ..opts
                    }
                ),
                Err(VideoError::NonFiniteOffset { servo: 8 })
            );
        }
        let mut backwards = ok.clone();
        backwards[1].t_ns = 50 * MS;
        assert_eq!(
            render_gif(&backwards, &opts),
            Err(VideoError::OutOfOrder {
                frame: 2,
                t_ns: 40 * MS,
                prev_ns: 50 * MS
            })
        );
        // Extreme but finite input renders: huge angles clamp, the smallest
        // and largest canvases work, times near u64::MAX do not overflow.
        let extreme = [
            HandFrame {
                t_ns: u64::MAX - 1,
                deg: [1e30, -1e30, 0.0, 720.0, -720.0, 3.0, f32::MAX, f32::MIN],
            },
            HandFrame {
                t_ns: u64::MAX,
                deg: OPEN,
            },
        ];
        for (width, height) in [MIN_SIZE, MAX_SIZE, (MAX_SIZE.0, MIN_SIZE.1)] {
            let bytes = render_gif(
                &extreme,
                &VideoOptions {
                    width,
                    height,
                    ..opts
                },
            )
            .unwrap();
            let (w, h, _, frames) = decode(&bytes);
            assert_eq!((w, h, frames.len()), (width, height, 1));
        }
    }

    #[test]
    fn sin_cos_matches_libm_closely() {
        for tenth in -7200..=7200 {
            let d = f64::from(tenth) / 10.0;
            let (s, c) = sin_cos_deg(d);
            let r = d.to_radians();
            assert!((s - r.sin()).abs() < 1e-8, "sin {d}");
            assert!((c - r.cos()).abs() < 1e-8, "cos {d}");
        }
        assert_eq!(sin_cos_deg(0.0), (0.0, 1.0));
        assert_eq!(sin_cos_deg(90.0), (1.0, 0.0));
    }

    #[test]
    fn rounding_of_centiseconds() {
        assert_eq!(round_cs(0), 0);
        assert_eq!(round_cs(4_999_999), 0);
        assert_eq!(round_cs(5_000_000), 1);
        assert_eq!(round_cs(14_999_999), 1);
        assert_eq!(round_cs(u64::MAX), u64::MAX / 10_000_000 + 1);
    }
}
