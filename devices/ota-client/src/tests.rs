//! The "never bricks" cases: happy path, bad downloads, rejections, crash on
//! first boot, power loss at every flash operation, random otadata.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

use proptest::prelude::*;

use crate::image::{self, HEADER_LEN, to_hex};
use crate::job::{ExecutionStatus, OtaJob};
use crate::mock::{CutMode, MockFlash, PowerCut};
use crate::partitions::{ENTRY_LEN, ImageState, Layout, OtaSelectEntry, Partitions, Slot};
use crate::updater::{Action, BootOutcome, DeviceConfig, Updater};
use crate::{BootDecision, Version};

type Flash = MockFlash<4, 4096>;

const LAYOUT: Layout = Layout {
    otadata_offset: 0,
    slot_size: 4 * 4096,
};
const FLASH_SIZE: usize = 2 * 4096 + 2 * 4 * 4096;
const TYPE: &str = "pet_feeder";

fn v(major: u16) -> Version {
    Version::new(major, 0, 0)
}

/// A deterministic image of ~5 KiB whose body depends on the version.
fn image_of(ty: &str, version: Version) -> Vec<u8> {
    let body: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(31) ^ (u32::from(version.major) * 7 + i / 251)) as u8)
        .collect();
    image::build_image(ty, version, &body).unwrap()
}

fn doc_for(ty: &str, version: Version, img: &[u8]) -> Vec<u8> {
    OtaJob {
        device_type: ty.into(),
        version,
        url: format!("https://firmware.local/{ty}/{version}.bin"),
        sha256: image::sha256(img),
        size: img.len() as u64,
    }
    .to_json()
    .into_bytes()
}

fn config() -> DeviceConfig {
    DeviceConfig {
        device_type: TYPE.into(),
        ota_enabled: true,
    }
}

fn updater<const W: usize, const E: usize>(
    flash: MockFlash<W, E>,
    layout: Layout,
) -> Updater<MockFlash<W, E>> {
    Updater::new(Partitions::new(flash, layout).unwrap(), config())
}

/// A device freshly provisioned with version 1.0.0 in ota_0.
fn provisioned() -> Flash {
    let mut p = Partitions::new(Flash::new(FLASH_SIZE), LAYOUT).unwrap();
    p.provision(&image_of(TYPE, v(1))).unwrap();
    p.into_flash()
}

fn up_data(up: &Updater<Flash>) -> Vec<u8> {
    up.partitions_flash().data.clone()
}

/// The self-test of a device whose 2.0.0 image is broken.
fn broken_v2(h: &crate::ImageHeader) -> bool {
    h.version != v(2)
}

fn pass(_: &crate::ImageHeader) -> bool {
    true
}

fn fail(_: &crate::ImageHeader) -> bool {
    false
}

/// Boot and return the updater and its outcome.
fn boot_with(
    flash: Flash,
    self_test: fn(&crate::ImageHeader) -> bool,
) -> (Updater<Flash>, BootOutcome) {
    let mut up = updater(flash, LAYOUT);
    let out = up.boot(self_test).unwrap();
    (up, out)
}

fn running(out: &BootOutcome) -> (Slot, Version) {
    match out {
        BootOutcome::Running { slot, header, .. } => (*slot, header.version),
        other => panic!("not running: {other:?}"),
    }
}

/// Feed the image in `chunk`-byte pieces; returns the last update.
fn download(up: &mut Updater<Flash>, img: &[u8], chunk: usize) -> crate::JobUpdate {
    let mut last = None;
    for c in img.chunks(chunk) {
        let u = up.feed(c);
        if u.status != ExecutionStatus::InProgress {
            return u;
        }
        last = Some(u);
    }
    last.unwrap()
}

fn flash_of(up: Updater<Flash>) -> Flash {
    up.into_partitions().into_flash()
}

/// Does `slot` hold exactly one of `images`? Returns its version.
fn slot_content(flash: &Flash, slot: Slot, images: &[&[u8]]) -> Option<Version> {
    let base = LAYOUT.slot_offset::<Flash>(slot) as usize;
    images.iter().find_map(|img| {
        (flash.data[base..base + img.len()] == **img).then(|| {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&img[..HEADER_LEN]);
            crate::ImageHeader::decode(&h).unwrap().version
        })
    })
}

/// Full update to `version`, no faults; returns the flash after the
/// confirming boot.
fn update_ok(flash: Flash, version: Version) -> Flash {
    let img = image_of(TYPE, version);
    let (mut up, _) = boot_with(flash, pass);
    let u = up.start_job(&doc_for(TYPE, version, &img)).unwrap();
    assert_eq!(u.status, ExecutionStatus::InProgress, "{u:?}");
    assert_eq!(
        download(&mut up, &img, 700).status,
        ExecutionStatus::InProgress
    );
    let (u, action) = up.finish();
    assert_eq!(action, Action::Reboot, "{u:?}");
    let (up, out) = boot_with(flash_of(up).reboot(), pass);
    assert_eq!(running(&out).1, version);
    flash_of(up)
}

#[test]
fn happy_path_update_confirm_and_stay() {
    let img1 = image_of(TYPE, v(1));
    let img2 = image_of(TYPE, v(2));
    let (mut up, out) = boot_with(provisioned(), pass);
    assert_eq!(running(&out), (Slot::Ota0, v(1)));
    assert_eq!(up.running_version(), Some(v(1)));
    assert_eq!(up.partitions().inactive_partition().unwrap(), Slot::Ota1);

    let doc = doc_for(TYPE, v(2), &img2);
    let u = up.start_job(&doc).unwrap();
    assert_eq!(u.status, ExecutionStatus::InProgress);
    assert_eq!(u.detail("bytesWritten"), Some("0"));
    assert_eq!(
        u.detail("totalBytes"),
        Some(format!("{}", img2.len()).as_str())
    );
    let u = up.feed(&img2[..1000]);
    assert_eq!(u.detail("bytesWritten"), Some("1000"));
    assert!(u.to_json().contains(r#""status":"IN_PROGRESS""#));
    let u = download(&mut up, &img2[1000..], 333);
    assert_eq!(
        u.detail("bytesWritten"),
        Some(format!("{}", img2.len()).as_str())
    );
    let (u, action) = up.finish();
    assert_eq!(
        (u.status, action),
        (ExecutionStatus::InProgress, Action::Reboot)
    );
    assert_eq!(u.detail("step"), Some("rebooting"));
    assert_eq!(up.partitions().boot_partition().unwrap(), Some(Slot::Ota1));

    // First boot of the new image: trial, self-test passes, confirmed.
    let (mut up, out) = boot_with(flash_of(up).reboot(), pass);
    match &out {
        BootOutcome::Running {
            slot,
            header,
            confirmed_now,
            ..
        } => {
            assert_eq!(
                (*slot, header.version, *confirmed_now),
                (Slot::Ota1, v(2), true)
            );
        }
        o => panic!("{o:?}"),
    }
    let u = up.resume_job(&doc).unwrap();
    assert_eq!(u.status, ExecutionStatus::Succeeded, "{u:?}");
    let entries = up.partitions().read_otadata().unwrap();
    assert!(
        entries
            .iter()
            .flatten()
            .any(|e| e.slot == Slot::Ota1 && e.state == ImageState::Valid && e.seq == 2)
    );

    // Next boot stays, writes nothing.
    let mut f = flash_of(up).reboot();
    f.cut_power(PowerCut {
        at_op: usize::MAX,
        mode: CutMode::Applied,
    });
    let (up, out) = boot_with(f, pass);
    assert_eq!(running(&out), (Slot::Ota1, v(2)));
    assert!(matches!(
        out,
        BootOutcome::Running {
            confirmed_now: false,
            rolled_back_from: None,
            ..
        }
    ));
    let f = flash_of(up);
    assert_eq!(f.ops, 0);
    assert_eq!(slot_content(&f, Slot::Ota0, &[&img1]), Some(v(1)));

    // And a second update goes back to ota_0 (the other otadata copy).
    let f = update_ok(f.reboot(), v(3));
    let (mut up, out) = boot_with(f.reboot(), pass);
    assert_eq!(running(&out), (Slot::Ota0, v(3)));
    let seqs: Vec<u32> = up
        .partitions()
        .read_otadata()
        .unwrap()
        .iter()
        .flatten()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs.len(), 2);
    assert!(seqs.contains(&3) && seqs.contains(&2));
}

#[test]
fn happy_path_with_16_byte_writes_and_1k_sectors() {
    type F16 = MockFlash<16, 1024>;
    let layout = Layout {
        otadata_offset: 3 * 1024,
        slot_size: 6 * 1024,
    };
    let mut p = Partitions::new(F16::new(3 * 1024 + 2 * 1024 + 12 * 1024), layout).unwrap();
    p.provision(&image_of(TYPE, v(1))).unwrap();
    let img = image_of(TYPE, v(2));
    let mut up = updater(p.into_flash(), layout);
    up.boot(pass).unwrap();
    up.start_job(&doc_for(TYPE, v(2), &img)).unwrap();
    for c in img.chunks(7) {
        assert_eq!(up.feed(c).status, ExecutionStatus::InProgress);
    }
    assert_eq!(up.finish().1, Action::Reboot);
    let mut up = updater(up.into_partitions().into_flash().reboot(), layout);
    assert!(matches!(
        up.boot(pass).unwrap(),
        BootOutcome::Running {
            slot: Slot::Ota1,
            confirmed_now: true,
            ..
        }
    ));
    assert_eq!(up.running_version(), Some(v(2)));
}

#[test]
fn layout_errors() {
    assert!(Partitions::new(Flash::new(FLASH_SIZE - 4096), LAYOUT).is_err());
    assert!(
        Partitions::new(
            Flash::new(FLASH_SIZE),
            Layout {
                otadata_offset: 100,
                slot_size: 4096
            }
        )
        .is_err()
    );
    assert!(
        Partitions::new(
            Flash::new(FLASH_SIZE),
            Layout {
                otadata_offset: 0,
                slot_size: 5000
            }
        )
        .is_err()
    );
}

/// A failed download leaves the boot selection and running image alone.
fn assert_unchanged(up: Updater<Flash>) {
    let mut up2 = updater(flash_of(up).reboot(), LAYOUT);
    assert_eq!(up2.partitions().boot_partition().unwrap(), Some(Slot::Ota0));
    let out = up2.boot(pass).unwrap();
    assert!(
        matches!(
            out,
            BootOutcome::Running {
                slot: Slot::Ota0,
                rolled_back_from: None,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(up2.running_version(), Some(v(1)));
}

#[test]
fn hash_mismatch_fails_and_boot_is_unchanged() {
    let img2 = image_of(TYPE, v(2));
    let (mut up, _) = boot_with(provisioned(), pass);
    let mut doc_img = img2.clone();
    doc_img[4000] ^= 1; // the registry's digest is of other bytes
    up.start_job(&doc_for(TYPE, v(2), &doc_img)).unwrap();
    assert_eq!(
        download(&mut up, &img2, 512).status,
        ExecutionStatus::InProgress
    );
    let (u, action) = up.finish();
    assert_eq!((u.status, action), (ExecutionStatus::Failed, Action::None));
    assert!(
        u.detail("reason").unwrap().contains("sha256 mismatch"),
        "{u:?}"
    );
    assert!(!up.is_updating());
    assert_unchanged(up);
}

#[test]
fn corrupted_byte_in_transit_fails() {
    let img2 = image_of(TYPE, v(2));
    let (mut up, _) = boot_with(provisioned(), pass);
    up.start_job(&doc_for(TYPE, v(2), &img2)).unwrap();
    let mut bad = img2.clone();
    bad[3000] ^= 0x80;
    download(&mut up, &bad, 512);
    let (u, _) = up.finish();
    assert_eq!(u.status, ExecutionStatus::Failed);
    assert_unchanged(up);
}

#[test]
fn truncated_download_fails_and_boot_is_unchanged() {
    let img2 = image_of(TYPE, v(2));
    let (mut up, _) = boot_with(provisioned(), pass);
    up.start_job(&doc_for(TYPE, v(2), &img2)).unwrap();
    download(&mut up, &img2[..img2.len() - 1], 512);
    let (u, action) = up.finish();
    assert_eq!((u.status, action), (ExecutionStatus::Failed, Action::None));
    assert!(u.detail("reason").unwrap().contains("truncated"), "{u:?}");
    assert_unchanged(up);
}

#[test]
fn link_outage_abort_fails_and_boot_is_unchanged() {
    let img2 = image_of(TYPE, v(2));
    let (mut up, _) = boot_with(provisioned(), pass);
    up.start_job(&doc_for(TYPE, v(2), &img2)).unwrap();
    download(&mut up, &img2[..2500], 512);
    let u = up.abort("download: link down");
    assert_eq!(u.status, ExecutionStatus::Failed);
    assert_eq!(u.detail("reason"), Some("download: link down"));
    assert_unchanged(up);
}

#[test]
fn too_many_bytes_fail() {
    let img2 = image_of(TYPE, v(2));
    let (mut up, _) = boot_with(provisioned(), pass);
    up.start_job(&doc_for(TYPE, v(2), &img2)).unwrap();
    download(&mut up, &img2, 512);
    let u = up.feed(&[0]);
    assert_eq!(u.status, ExecutionStatus::Failed);
    assert!(u.detail("reason").unwrap().contains("too large"));
    assert_unchanged(up);
}

#[test]
fn image_header_for_another_type_fails_before_writing() {
    let other = image_of("sphero_rvr", v(2));
    let (mut up, _) = boot_with(provisioned(), pass);
    // The job claims our type, the image says otherwise.
    up.start_job(&doc_for(TYPE, v(2), &other)).unwrap();
    let before = up.partitions().flash().data.clone();
    let u = up.feed(&other[..HEADER_LEN]);
    assert_eq!(u.status, ExecutionStatus::Failed);
    assert!(u.detail("reason").unwrap().contains("device type"), "{u:?}");
    assert_eq!(up.partitions().flash().data, before);
    assert_unchanged(up);
}

#[test]
fn rejections_happen_before_any_flash_write() {
    let img2 = image_of(TYPE, v(2));
    let img1 = image_of(TYPE, v(1));
    let big = image::build_image(TYPE, v(2), &vec![0u8; 4 * 4096]).unwrap();
    let cases: Vec<(Vec<u8>, bool, &str)> = vec![
        (doc_for("sphero_rvr", v(2), &image_of("sphero_rvr", v(2))), true, "wrong device type"),
        (doc_for(TYPE, v(2), &img2), false, "OTA disabled"),
        (doc_for(TYPE, v(1), &img1), true, "already running 1.0.0"),
        (doc_for(TYPE, v(2), &big), true, "too large"),
        (br#"{"operation":"ota","deviceType":"pet_feeder"}"#.to_vec(), true, "OTA job document"),
        (br#"{"operation":"ota","deviceType":"pet_feeder","version":"2.x","url":"u","sha256":"00","size":1}"#.to_vec(), true, "bad version"),
        (b"not json".to_vec(), true, "job document"),
    ];
    for (doc, gate, why) in cases {
        let (up, _) = boot_with(provisioned(), pass);
        let before = up_data(&up);
        let mut f = flash_of(up);
        f.cut_power(PowerCut {
            at_op: usize::MAX,
            mode: CutMode::Applied,
        });
        let mut up = updater(f, LAYOUT);
        up.config_mut().ota_enabled = gate;
        up.boot(pass).unwrap();
        let u = up.start_job(&doc).unwrap();
        assert_eq!(u.status, ExecutionStatus::Rejected, "{why}: {u:?}");
        assert!(u.detail("reason").unwrap().contains(why), "{why}: {u:?}");
        assert!(!up.is_updating());
        let f = flash_of(up);
        assert_eq!(f.ops, 0, "{why}: flash written");
        assert_eq!(f.data, before);
    }
    // Not an OTA job: not ours.
    let (mut up, _) = boot_with(provisioned(), pass);
    assert_eq!(up.start_job(br#"{"operation":"reboot"}"#), None);
}

#[test]
fn self_test_failure_rolls_back_to_the_previous_valid_image() {
    let img2 = image_of(TYPE, v(2));
    let doc = doc_for(TYPE, v(2), &img2);
    let (mut up, _) = boot_with(provisioned(), pass);
    up.start_job(&doc).unwrap();
    download(&mut up, &img2, 1024);
    assert_eq!(up.finish().1, Action::Reboot);
    let (up, out) = boot_with(flash_of(up).reboot(), fail);
    assert!(
        matches!(&out, BootOutcome::Reboot { failed } if failed.version == v(2)),
        "{out:?}"
    );
    let (mut up, out) = boot_with(flash_of(up).reboot(), pass);
    assert!(
        matches!(
            out,
            BootOutcome::Running {
                slot: Slot::Ota0,
                rolled_back_from: Some(Slot::Ota1),
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(up.running_version(), Some(v(1)));
    assert_eq!(up.partitions().running_state(), Some(ImageState::Valid));
    let u = up.resume_job(&doc).unwrap();
    assert_eq!(u.status, ExecutionStatus::Failed);
    assert!(
        u.detail("reason").unwrap().contains("rolled back to 1.0.0"),
        "{u:?}"
    );
    // Stays on 1.0.0, and a later update still works.
    let (up, out) = boot_with(flash_of(up).reboot(), pass);
    assert_eq!(running(&out), (Slot::Ota0, v(1)));
    let f = update_ok(flash_of(up).reboot(), v(3));
    let (_, out) = boot_with(f.reboot(), pass);
    assert_eq!(running(&out), (Slot::Ota1, v(3)));
}

#[test]
fn reset_before_confirmation_rolls_back() {
    let img2 = image_of(TYPE, v(2));
    let (mut up, _) = boot_with(provisioned(), pass);
    up.start_job(&doc_for(TYPE, v(2), &img2)).unwrap();
    download(&mut up, &img2, 1024);
    up.finish();
    // The bootloader starts the new image, which crashes before confirming.
    let mut p = Partitions::new(flash_of(up).reboot(), LAYOUT).unwrap();
    assert_eq!(
        p.on_boot().unwrap(),
        BootDecision::TrialBoot { slot: Slot::Ota1 }
    );
    let (up, out) = boot_with(p.into_flash().reboot(), pass);
    assert!(
        matches!(
            out,
            BootOutcome::Running {
                slot: Slot::Ota0,
                rolled_back_from: Some(Slot::Ota1),
                ..
            }
        ),
        "{out:?}"
    );
    let mut p = up.into_partitions();
    let e = p.read_otadata().unwrap();
    assert!(
        e.iter()
            .flatten()
            .any(|e| e.slot == Slot::Ota1 && e.state == ImageState::Aborted)
    );
}

#[test]
fn rollback_without_a_fallback_is_refused() {
    let mut p = Partitions::new(provisioned(), LAYOUT).unwrap();
    assert!(matches!(
        p.on_boot().unwrap(),
        BootDecision::Boot {
            slot: Slot::Ota0,
            state: ImageState::Valid,
            ..
        }
    ));
    assert_eq!(
        p.mark_invalid_and_rollback(),
        Err(crate::PartitionError::RollbackFailed)
    );
    assert_eq!(p.boot_partition().unwrap(), Some(Slot::Ota0));
}

#[test]
fn update_refused_while_running_image_is_unconfirmed() {
    let f = update_ok(provisioned(), v(2));
    let img3 = image_of(TYPE, v(3));
    let mut up = updater(f.reboot(), LAYOUT);
    up.start_job(&doc_for(TYPE, v(3), &img3)).unwrap();
    up.abort("x");
    let mut p = up.into_partitions();
    p.set_boot(Slot::Ota0).unwrap();
    assert_eq!(
        p.on_boot().unwrap(),
        BootDecision::TrialBoot { slot: Slot::Ota0 }
    );
    assert_eq!(
        p.begin_update(),
        Err(crate::PartitionError::RunningNotConfirmed)
    );
}

/// The scenario a cut schedule runs across: boot, update, reboot, self-test
/// (`self_test_ok`), reboot again. Returns the flash (dead if the cut hit).
fn scenario(flash: Flash, to: Version, self_test_ok: bool) -> Flash {
    let img = image_of(TYPE, to);
    let test = if self_test_ok { pass } else { broken_v2 };
    let mut up = updater(flash, LAYOUT);
    let dead = |up: &mut Updater<Flash>| up.partitions().flash().is_dead();
    if up.boot(pass).is_err() || dead(&mut up) {
        return flash_of(up);
    }
    up.start_job(&doc_for(TYPE, to, &img));
    for c in img.chunks(600) {
        up.feed(c);
        if dead(&mut up) {
            return flash_of(up);
        }
    }
    let (_, action) = up.finish();
    if dead(&mut up) || action != Action::Reboot {
        return flash_of(up);
    }
    for _ in 0..2 {
        let mut next = updater(flash_of(up).warm_restart(), LAYOUT);
        let _ = next.boot(test);
        up = next;
        if dead(&mut up) {
            break;
        }
    }
    flash_of(up)
}

/// After a cut and a reboot: the device runs a complete image (`old` or
/// `new`), otadata is consistent, the next boot agrees, and a new update works.
fn check_after_cut(
    dead: &Flash,
    old: (Version, Slot),
    new: (Version, Slot),
    new_ok: bool,
    ctx: &str,
) -> Version {
    let images = [image_of(TYPE, old.0), image_of(TYPE, new.0)];
    let imgs: [&[u8]; 2] = [&images[0], &images[1]];
    let test = if new_ok { pass } else { broken_v2 };
    let (mut up, mut out) = boot_with(dead.reboot(), test);
    if let BootOutcome::Reboot { failed } = &out {
        assert!(!new_ok && failed.version == new.0, "{ctx}: {out:?}");
        (up, out) = boot_with(flash_of(up).reboot(), test);
    }
    let (slot, version) = match out {
        BootOutcome::Running {
            slot, ref header, ..
        } => (slot, header.version),
        o => panic!("{ctx}: {o:?}"),
    };
    let expected_slot = if version == old.0 { old.1 } else { new.1 };
    assert!(
        version == old.0 || version == new.0,
        "{ctx}: runs {version}"
    );
    assert_eq!(slot, expected_slot, "{ctx}");
    assert_eq!(
        slot_content(up.partitions().flash(), slot, &imgs),
        Some(version),
        "{ctx}: garbage in {slot}"
    );
    // otadata: the running entry is the newest bootable one, VALID, and describes the slot.
    let entries = up.partitions().read_otadata().unwrap();
    let mut good: Vec<OtaSelectEntry> = entries.iter().flatten().copied().collect();
    assert!(!good.is_empty(), "{ctx}: no otadata entry");
    if good.len() == 2 {
        assert_ne!(good[0].seq, good[1].seq, "{ctx}: equal seq");
    }
    good.sort_by_key(|e| core::cmp::Reverse(e.seq));
    let newest = good
        .iter()
        .find(|e| e.state.bootable())
        .unwrap_or_else(|| panic!("{ctx}: no bootable entry"));
    assert_eq!(newest.slot, slot, "{ctx}");
    assert_eq!(newest.state, ImageState::Valid, "{ctx}");
    let img = if version == old.0 { imgs[0] } else { imgs[1] };
    assert_eq!(
        (newest.image_len as usize, newest.image_sha256),
        (img.len(), image::sha256(img)),
        "{ctx}"
    );
    assert_eq!(
        up.partitions().boot_partition().unwrap(),
        Some(slot),
        "{ctx}"
    );
    // Stable: another boot chooses the same and writes nothing.
    let mut f = flash_of(up).reboot();
    f.cut_power(PowerCut {
        at_op: usize::MAX,
        mode: CutMode::Applied,
    });
    let (up, out) = boot_with(f, test);
    assert_eq!(running(&out), (slot, version), "{ctx}");
    let f = flash_of(up);
    assert_eq!(f.ops, 0, "{ctx}: second boot wrote");
    // Recoverable: an update to a fresh version succeeds from here.
    let next = Version::new(9, 9, 9);
    let f = update_ok(f.reboot(), next);
    let (_, out) = boot_with(f.reboot(), pass);
    assert_eq!(running(&out), (slot.other(), next), "{ctx}");
    version
}

/// Cut power at every erase/write of `scenario`, in every cut mode.
/// Returns (cut points, cases ending on old, cases ending on new).
fn power_cut_sweep(
    start: Flash,
    old: (Version, Slot),
    new: (Version, Slot),
    self_test_ok: bool,
) -> (usize, usize, usize) {
    let mut counter = start.reboot();
    counter.cut_power(PowerCut {
        at_op: usize::MAX,
        mode: CutMode::Applied,
    });
    let total = scenario(counter, new.0, self_test_ok).ops;
    assert!(total > 10, "scenario too small: {total} ops");
    let (mut on_old, mut on_new) = (0, 0);
    for n in 1..=total {
        for mode in [CutMode::NotApplied, CutMode::Half, CutMode::Applied] {
            let mut f = start.reboot();
            f.cut_power(PowerCut { at_op: n, mode });
            let dead = scenario(f, new.0, self_test_ok);
            assert!(dead.is_dead(), "op {n} never reached");
            let ctx = format!("cut at op {n}/{total} ({mode:?}, self-test ok: {self_test_ok})");
            if check_after_cut(&dead, old, new, self_test_ok, &ctx) == old.0 {
                on_old += 1;
            } else {
                on_new += 1;
            }
        }
    }
    if !self_test_ok {
        assert_eq!(on_new, 0, "a failing image must never end up running");
    }
    (total, on_old, on_new)
}

#[test]
fn power_loss_at_every_flash_operation_of_a_first_update() {
    let (total, on_old, on_new) =
        power_cut_sweep(provisioned(), (v(1), Slot::Ota0), (v(2), Slot::Ota1), true);
    std::println!("first update: {total} cut points x 3 modes; old {on_old}, new {on_new}");
    assert!(on_old > 0 && on_new > 0);
}

#[test]
fn power_loss_at_every_flash_operation_of_a_second_update() {
    // ota_1 runs, ota_0 holds the stale 1.0.0 and both otadata copies are used.
    let start = update_ok(provisioned(), v(2));
    let (total, on_old, on_new) =
        power_cut_sweep(start, (v(2), Slot::Ota1), (v(3), Slot::Ota0), true);
    std::println!("second update: {total} cut points x 3 modes; old {on_old}, new {on_new}");
    assert!(on_old > 0 && on_new > 0);
}

#[test]
fn power_loss_at_every_flash_operation_of_a_failing_update() {
    let (total, on_old, _) =
        power_cut_sweep(provisioned(), (v(1), Slot::Ota0), (v(2), Slot::Ota1), false);
    std::println!("failing update: {total} cut points x 3 modes; old {on_old}");
}

#[test]
fn verifier_header_errors() {
    let img = image_of(TYPE, v(2));
    let expect = |size: u64| image::Expectation {
        device_type: TYPE.into(),
        running_version: Some(v(1)),
        size,
        sha256: image::sha256(&img),
        max_size: 4 * 4096,
    };
    let mut bad = img.clone();
    bad[0] = b'X';
    let mut ver = image::ImageVerifier::new(expect(img.len() as u64)).unwrap();
    assert!(matches!(
        ver.feed(&bad),
        Err(image::ImageError::BadHeader(_))
    ));
    assert!(ver.feed(&[]).is_err(), "stays failed");
    let mut ver = image::ImageVerifier::new(expect(img.len() as u64 + 1)).unwrap();
    assert!(matches!(
        ver.feed(&img),
        Err(image::ImageError::BadHeader(_))
    ));
    assert!(matches!(
        image::ImageVerifier::new(expect(5 * 4096)),
        Err(image::ImageError::TooLarge { .. })
    ));
    let same = image_of(TYPE, v(1));
    let mut e = expect(same.len() as u64);
    e.sha256 = image::sha256(&same);
    let mut ver = image::ImageVerifier::new(e).unwrap();
    assert_eq!(ver.feed(&same), Err(image::ImageError::SameVersion(v(1))));
    assert_eq!(Version::parse("1.2.3"), Some(Version::new(1, 2, 3)));
    assert_eq!(Version::parse("v10.0.1"), Some(Version::new(10, 0, 1)));
    for s in ["1.2", "1.2.3.4", "1..3", "a.b.c", "1.2.-3", "70000.0.0", ""] {
        assert_eq!(Version::parse(s), None, "{s}");
    }
    // Files use the strict form: no `v`, no leading zeros, each reason named.
    use image::VersionError as E;
    assert_eq!("1.2.3".parse(), Ok(Version::new(1, 2, 3)));
    for (s, why) in [
        ("v1.2.3", E::NotANumber),
        ("01.2.3", E::LeadingZero),
        ("1.2", E::Parts),
        ("1.2.3.4", E::Parts),
        ("1.2.3-rc.1", E::Suffix),
        ("1.2.3+b", E::Suffix),
        ("70000.0.0", E::TooLarge),
        ("1..3", E::NotANumber),
    ] {
        assert_eq!(s.parse::<Version>(), Err(why), "{s}");
    }
    let d = image::sha256(b"x");
    assert_eq!(image::from_hex(&to_hex(&d)), Some(d));
    assert_eq!(image::from_hex(&to_hex(&d).to_uppercase()), Some(d));
}

#[test]
fn job_document_round_trip() {
    let img = image_of(TYPE, v(2));
    let doc = doc_for(TYPE, v(2), &img);
    let job = OtaJob::parse(&doc).unwrap();
    assert_eq!((job.version, job.size), (v(2), img.len() as u64));
    let s = String::from_utf8(doc).unwrap();
    assert!(s.contains(r#""operation":"ota""#) && s.contains(r#""deviceType":"pet_feeder""#));
}

/// Flash with ota_0 = 1.0.0 and ota_1 = 2.0.0 or garbage with a valid header.
fn two_slots(slot1_real: bool) -> (Flash, [u8; 32], [u8; 32]) {
    let mut f = Flash::new(FLASH_SIZE);
    let img1 = image_of(TYPE, v(1));
    let mut img2 = image_of(TYPE, v(2));
    let d2 = image::sha256(&img2);
    if !slot1_real {
        for b in &mut img2[HEADER_LEN..] {
            *b = !*b;
        }
    }
    let o0 = LAYOUT.slot_offset::<Flash>(Slot::Ota0) as usize;
    let o1 = LAYOUT.slot_offset::<Flash>(Slot::Ota1) as usize;
    f.data[o0..o0 + img1.len()].copy_from_slice(&img1);
    f.data[o1..o1 + img2.len()].copy_from_slice(&img2);
    (f, image::sha256(&img1), d2)
}

fn arb_entry(d1: [u8; 32], d2: [u8; 32]) -> impl Strategy<Value = [u8; ENTRY_LEN]> {
    let raw = proptest::collection::vec(any::<u8>(), ENTRY_LEN).prop_map(|v| {
        let mut b = [0u8; ENTRY_LEN];
        b.copy_from_slice(&v);
        b
    });
    let state = prop_oneof![
        (0u32..5).prop_map(|s| ImageState::from_u32(s).unwrap()),
        Just(ImageState::Undefined)
    ];
    let len = prop_oneof![Just(5064u32), any::<u32>()];
    let digest = prop_oneof![Just(d1), Just(d2), any::<[u8; 32]>()];
    let structured = (1u32..6, any::<bool>(), state, len, digest).prop_map(
        |(seq, s1, state, image_len, image_sha256)| {
            OtaSelectEntry {
                seq,
                slot: if s1 { Slot::Ota1 } else { Slot::Ota0 },
                state,
                image_len,
                image_sha256,
            }
            .encode()
        },
    );
    let erased = Just([0xFFu8; ENTRY_LEN]);
    prop_oneof![raw, structured, erased]
}

fn arb_entry_for_images() -> impl Strategy<Value = [u8; ENTRY_LEN]> {
    let (_, d1, d2) = two_slots(true);
    arb_entry(d1, d2)
}

proptest! {
    #[test]
    fn random_otadata_never_panics_or_boots_garbage(
        slot1_real in any::<bool>(),
        a in arb_entry_for_images(),
        b in arb_entry_for_images(),
    ) {
        let (f, _, _) = two_slots(slot1_real);
        let mut f = f;
        let c1 = LAYOUT.otadata_copy::<Flash>(1) as usize;
        f.data[..ENTRY_LEN].copy_from_slice(&a);
        f.data[c1..c1 + ENTRY_LEN].copy_from_slice(&b);
        let img1 = image_of(TYPE, v(1));
        let img2 = image_of(TYPE, v(2));
        let real: Vec<&[u8]> = if slot1_real { vec![&img1, &img2] } else { vec![&img1] };
        for _ in 0..3 {
            let mut p = Partitions::new(f.reboot(), LAYOUT).unwrap();
            let d = p.on_boot().unwrap();
            if let Some(slot) = d.slot() {
                let got = slot_content(p.flash(), slot, &real);
                prop_assert!(got.is_some(), "chose {} holding garbage: {:?}", slot, d);
                prop_assert_eq!(got == Some(v(1)), slot == Slot::Ota0);
            }
            // After a decision, every entry is PENDING_VERIFY only if it is the trial.
            let entries = p.read_otadata().unwrap();
            for e in entries.iter().flatten() {
                if e.state == ImageState::PendingVerify {
                    let is_trial = matches!(d, BootDecision::TrialBoot { slot } if slot == e.slot);
                    prop_assert!(is_trial);
                }
            }
            f = p.into_flash();
        }
    }

    #[test]
    fn random_otadata_sector_bytes(bytes in proptest::collection::vec(any::<u8>(), 2 * 4096), slot1_real in any::<bool>()) {
        let (mut f, _, _) = two_slots(slot1_real);
        f.data[..2 * 4096].copy_from_slice(&bytes);
        let mut p = Partitions::new(f, LAYOUT).unwrap();
        let d = p.on_boot().unwrap();
        let img1 = image_of(TYPE, v(1));
        if let Some(slot) = d.slot() {
            // Random bytes essentially never carry a good CRC: blank-otadata fallback to ota_0.
            prop_assert_eq!(slot, Slot::Ota0);
            prop_assert_eq!(slot_content(p.flash(), slot, &[&img1]), Some(v(1)));
        }
    }

    #[test]
    fn verifier_accepts_any_chunking_and_rejects_any_flip(
        cuts in proptest::collection::vec(0usize..5064, 0..20),
        flip in 0usize..5064,
        bit in 0u8..8,
    ) {
        let img = image_of(TYPE, v(2));
        let expect = image::Expectation {
            device_type: TYPE.into(),
            running_version: Some(v(1)),
            size: img.len() as u64,
            sha256: image::sha256(&img),
            max_size: 4 * 4096,
        };
        let mut cuts = cuts;
        cuts.push(0);
        cuts.push(img.len());
        cuts.sort();
        let feed_all = |data: &[u8]| -> Result<image::VerifiedImage, image::ImageError> {
            let mut ver = image::ImageVerifier::new(expect.clone())?;
            for w in cuts.windows(2) {
                ver.feed(&data[w[0]..w[1]])?;
            }
            ver.finish()
        };
        let ok = feed_all(&img).unwrap();
        prop_assert_eq!(ok.header.version, v(2));
        let mut bad = img.clone();
        bad[flip] ^= 1 << bit;
        prop_assert!(feed_all(&bad).is_err());
    }
}

/// Slots on 64 KiB boundaries (as ESP-IDF places app partitions), 128 KiB each.
const BLOCK_LAYOUT: Layout = Layout {
    otadata_offset: 64 * 1024 - 2 * 4096,
    slot_size: 128 * 1024,
};
const BLOCK_FLASH_SIZE: usize = 64 * 1024 + 2 * 128 * 1024;

fn big_image(version: Version, len: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(13) ^ u32::from(version.major)) as u8)
        .collect();
    image::build_image(TYPE, version, &body).unwrap()
}

#[test]
fn updates_erase_aligned_whole_blocks_and_survive_a_torn_block_erase() {
    let mut p = Partitions::new(Flash::new(BLOCK_FLASH_SIZE), BLOCK_LAYOUT).unwrap();
    p.provision(&big_image(v(1), 1000)).unwrap();
    let start = p.into_flash();
    // 70 KiB in a 128 KiB slot on a block boundary: two block erases.
    let img = big_image(v(2), 70 * 1024);
    let mut up = updater(start.reboot(), BLOCK_LAYOUT);
    up.boot(pass).unwrap();
    up.start_job(&doc_for(TYPE, v(2), &img)).unwrap();
    let ops_before = up.partitions().flash().ops;
    for c in img.chunks(4096) {
        assert_eq!(up.feed(c).status, ExecutionStatus::InProgress);
    }
    assert_eq!(up.finish().1, Action::Reboot);
    let pages = img.len().div_ceil(256);
    // Erases: 2 blocks (not 18 sectors); writes: pages; then one otadata
    // erase + write to select the slot.
    assert_eq!(up.partitions().flash().ops - ops_before, 2 + pages + 2);
    let mut up = updater(flash_of(up).reboot(), BLOCK_LAYOUT);
    assert_eq!(running(&up.boot(pass).unwrap()), (Slot::Ota1, v(2)));

    // Power lost half way through the block erase (the first erase of the
    // update): the device boots its old image.
    let mut f = start.reboot();
    let boot_ops = {
        let mut probe = updater(start.reboot(), BLOCK_LAYOUT);
        probe.boot(pass).unwrap();
        flash_of(probe).ops
    };
    f.cut_power(PowerCut {
        at_op: boot_ops + 1,
        mode: CutMode::Half,
    });
    let mut up = updater(f, BLOCK_LAYOUT);
    up.boot(pass).unwrap();
    up.start_job(&doc_for(TYPE, v(2), &img)).unwrap();
    let u = up.feed(&img[..4096]);
    assert_eq!(u.status, ExecutionStatus::Failed);
    let mut up = updater(flash_of(up).reboot(), BLOCK_LAYOUT);
    assert_eq!(running(&up.boot(pass).unwrap()), (Slot::Ota0, v(1)));
}
