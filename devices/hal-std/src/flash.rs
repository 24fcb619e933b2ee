//! A NOR flash in a file, with the simulator's geometry.
//!
//! Semantics as the simulator's RAM flash: erased bytes read 0xFF, a write
//! only clears bits (the new cell is `old & new`, as NOR programming does),
//! writes are [`WRITE_SIZE`]-aligned, erases work on whole [`ERASE_SIZE`]
//! sectors, and misaligned or out-of-bounds calls fail with
//! [`NorFlashErrorKind`] errors. A device's flash image therefore persists
//! across runs of the device process, as a board's flash across reboots.
//!
//! Durability: with [`FileFlash::durable`] on (the default) every erase
//! and write is followed by `fdatasync`, so once a call returns its bytes
//! survive the process being killed or the machine losing power. A call
//! interrupted by a power cut may be torn, as on real NOR: part of the
//! range done, and a word may be left half-programmed. Surviving that is
//! the job of the layer above (the OTA client's A/B partitions and
//! checksummed records), not of the flash. A process kill alone never
//! tears a call's bytes mid-word: each `pwrite` completes in the kernel.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash, check_erase, check_read, check_write,
};
pub use twinrig_hal::flash::{ERASE_SIZE, WRITE_SIZE};

/// Why [`FileFlash::open`] failed. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileFlashError {
    /// The size is not a positive whole number of sectors addressable by `u32`.
    #[error(
        "flash file {path}: size {size} is not a positive multiple of the {ERASE_SIZE}-byte sector (at most 4 GiB)"
    )]
    BadSize {
        /// The file.
        path: PathBuf,
        /// The size asked for.
        size: usize,
    },
    /// The file exists with another size; it is never resized (that would
    /// lose or invent flash content).
    #[error("flash file {path} is {actual} bytes, expected {expected}: refusing to resize it")]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// The size asked for.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// The file could not be created, opened or read.
    #[error("flash file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// A NOR flash backed by a file of exactly its capacity.
#[derive(Debug)]
pub struct FileFlash {
    file: File,
    path: PathBuf,
    capacity: usize,
    durable: bool,
    last_io_error: Option<io::Error>,
}

impl FileFlash {
    /// Opens the flash file at `path`, of `size` bytes (a whole number of
    /// [`ERASE_SIZE`] sectors). A missing file is created fully erased
    /// (0xFF); an existing file of another size is an error, never resized.
    pub fn open(path: impl AsRef<Path>, size: usize) -> Result<Self, FileFlashError> {
        let path = path.as_ref().to_path_buf();
        if size == 0 || !size.is_multiple_of(ERASE_SIZE) || u32::try_from(size).is_err() {
            return Err(FileFlashError::BadSize { path, size });
        }
        let io_err = |source| FileFlashError::Io {
            path: path.clone(),
            source,
        };
        match fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_erased(&path, size).map_err(io_err)?;
            }
            Err(e) => return Err(io_err(e)),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        if meta.len() != size as u64 {
            return Err(FileFlashError::WrongSize {
                path,
                expected: size as u64,
                actual: meta.len(),
            });
        }
        Ok(FileFlash {
            file,
            path,
            capacity: size,
            durable: true,
            last_io_error: None,
        })
    }

    /// Whether every erase and write is synced to the disk before it
    /// returns (default: on). Off trades power-cut safety for speed (tests,
    /// scratch images); a process kill loses nothing either way.
    pub fn durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last I/O error behind a [`NorFlashErrorKind::Other`], for logs
    /// (the flash traits' error kinds cannot carry it).
    pub fn last_io_error(&self) -> Option<&io::Error> {
        self.last_io_error.as_ref()
    }

    /// Records an I/O failure and reports it as the flash's `Other` error.
    fn failed(&mut self, e: io::Error) -> NorFlashErrorKind {
        self.last_io_error = Some(e);
        NorFlashErrorKind::Other
    }

    fn sync(&mut self) -> Result<(), NorFlashErrorKind> {
        if self.durable {
            self.file.sync_data().map_err(|e| self.failed(e))?;
        }
        Ok(())
    }
}

/// Creates `path` erased: filled under a temporary name, synced, then
/// renamed into place, so a process killed while creating it never leaves
/// a short file behind (which would then be refused as the wrong size).
fn create_erased(path: &Path, size: usize) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".creating-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let sector = [0xFF; ERASE_SIZE];
        for at in (0..size).step_by(ERASE_SIZE) {
            file.write_all_at(&sector, at as u64)?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory is synced.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl ErrorType for FileFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len())?;
        self.file
            .read_exact_at(bytes, u64::from(offset))
            .map_err(|e| self.failed(e))
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to)?;
        let sector = [0xFF; ERASE_SIZE];
        for at in (from..to).step_by(ERASE_SIZE) {
            self.file
                .write_all_at(&sector, u64::from(at))
                .map_err(|e| self.failed(e))?;
        }
        self.sync()
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len())?;
        // NOR programming clears bits only: read the cells, AND, write back.
        let mut cells = vec![0u8; bytes.len()];
        self.file
            .read_exact_at(&mut cells, u64::from(offset))
            .map_err(|e| self.failed(e))?;
        for (cell, b) in cells.iter_mut().zip(bytes) {
            *cell &= *b;
        }
        self.file
            .write_all_at(&cells, u64::from(offset))
            .map_err(|e| self.failed(e))?;
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    const SECTOR: u32 = ERASE_SIZE as u32;

    #[test]
    fn erased_write_and_nor_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let mut f = FileFlash::open(&path, 4 * ERASE_SIZE).unwrap();
        assert_eq!(f.capacity(), 4 * ERASE_SIZE);
        assert_eq!(fs::metadata(&path).unwrap().len(), 4 * ERASE_SIZE as u64);

        let mut b = [0u8; 8];
        f.read(SECTOR - 4, &mut b).unwrap();
        assert_eq!(b, [0xFF; 8]);

        f.write(8, &[0xF0, 0x0F, 0xAA, 0x55]).unwrap();
        // A second write ANDs into the cells: it can clear bits, never set them.
        f.write(8, &[0x3C, 0xFF, 0x0F, 0xFF]).unwrap();
        let mut b = [0u8; 4];
        f.read(8, &mut b).unwrap();
        assert_eq!(b, [0x30, 0x0F, 0x0A, 0x55]);

        // Erase sets the whole sector back to 0xFF, and only that sector.
        f.write(SECTOR, &[0; 4]).unwrap();
        f.erase(0, SECTOR).unwrap();
        let mut b = [0u8; 12];
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF; 12]);
        let mut b = [0u8; 4];
        f.read(SECTOR, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
    }

    #[test]
    fn misaligned_and_out_of_bounds_calls_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = FileFlash::open(dir.path().join("f"), 2 * ERASE_SIZE).unwrap();
        let cap = 2 * SECTOR;
        assert_eq!(f.write(2, &[0; 4]), Err(NorFlashErrorKind::NotAligned));
        assert_eq!(f.write(0, &[0; 3]), Err(NorFlashErrorKind::NotAligned));
        assert_eq!(f.write(cap, &[0; 4]), Err(NorFlashErrorKind::OutOfBounds));
        assert_eq!(
            f.write(cap - 4, &[0; 8]),
            Err(NorFlashErrorKind::OutOfBounds)
        );
        assert_eq!(f.erase(1, SECTOR), Err(NorFlashErrorKind::NotAligned));
        assert_eq!(f.erase(0, SECTOR + 4), Err(NorFlashErrorKind::NotAligned));
        assert_eq!(f.erase(0, 3 * SECTOR), Err(NorFlashErrorKind::OutOfBounds));
        let mut b = [0u8; 4];
        assert_eq!(f.read(cap - 2, &mut b), Err(NorFlashErrorKind::OutOfBounds));
        assert_eq!(
            f.read(u32::MAX, &mut b),
            Err(NorFlashErrorKind::OutOfBounds)
        );
        // Nothing was changed by the refused calls.
        let mut all = vec![0u8; cap as usize];
        f.read(0, &mut all).unwrap();
        assert!(all.iter().all(|&x| x == 0xFF));
    }

    #[test]
    fn content_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let data: Vec<u8> = (0..64u8).collect();
        {
            let mut f = FileFlash::open(&path, 2 * ERASE_SIZE).unwrap();
            f.write(SECTOR + 16, &data).unwrap();
        }
        let mut f = FileFlash::open(&path, 2 * ERASE_SIZE).unwrap();
        let mut b = vec![0u8; 64];
        f.read(SECTOR + 16, &mut b).unwrap();
        assert_eq!(b, data);
        let mut b = [0u8; 16];
        f.read(SECTOR, &mut b).unwrap();
        assert_eq!(b, [0xFF; 16]);
    }

    #[test]
    fn a_file_of_another_size_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        fs::write(&path, vec![0x12; ERASE_SIZE + 1]).unwrap();
        let err = FileFlash::open(&path, 2 * ERASE_SIZE).unwrap_err();
        assert!(
            matches!(
                err,
                FileFlashError::WrongSize {
                    expected: 8192,
                    actual: 4097,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), vec![0x12; ERASE_SIZE + 1]);
    }

    #[test]
    fn a_size_that_is_not_whole_sectors_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        for size in [0, ERASE_SIZE + 4] {
            let err = FileFlash::open(&path, size).unwrap_err();
            assert!(matches!(err, FileFlashError::BadSize { .. }), "{err:?}");
        }
        assert!(!path.exists());
    }

    #[test]
    fn unusable_paths_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be (root can open any file, so
        // permissions cannot be the test here).
        let err = FileFlash::open(dir.path(), ERASE_SIZE).unwrap_err();
        assert!(matches!(err, FileFlashError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        // A file in a directory that does not exist.
        let missing = dir.path().join("no-such-dir").join("flash.bin");
        let err = FileFlash::open(&missing, ERASE_SIZE).unwrap_err();
        assert!(matches!(err, FileFlashError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
        // Nothing left behind in the directory.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    // --- Killed mid-write -------------------------------------------------

    const KILL_SECTORS: u32 = 8;
    const CHILD_ENV: &str = "TWINRIG_FILE_FLASH_KILL_CHILD";

    /// The content of `sector` after round `round` (distinct every round).
    fn pattern(sector: u32, round: u32) -> Vec<u8> {
        (0..ERASE_SIZE as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) ^ (sector * 7919 + round * 104_729)) as u8)
            .collect()
    }

    /// The child: rewrites each sector in turn, round after round, in
    /// 256-byte writes, and reports each finished sector on stdout.
    #[test]
    #[ignore = "the child process of killed_writer_leaves_every_reported_sector_whole"]
    fn kill_child_writer() {
        let Some(path) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let mut f = FileFlash::open(&path, (KILL_SECTORS * SECTOR) as usize).unwrap();
        for round in 1.. {
            for sector in 0..KILL_SECTORS {
                let base = sector * SECTOR;
                f.erase(base, base + SECTOR).unwrap();
                for (i, page) in pattern(sector, round).chunks(256).enumerate() {
                    f.write(base + i as u32 * 256, page).unwrap();
                }
                println!("done {sector} {round}");
            }
        }
    }

    #[test]
    fn killed_writer_leaves_every_reported_sector_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let size = (KILL_SECTORS * SECTOR) as usize;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "flash::tests::kill_child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let parse = |line: &str| -> Option<(u32, u32)> {
            let mut words = line.strip_prefix("done ")?.split(' ');
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        };
        // Kill after some sectors were reported (more than one round), mid-loop.
        let mut reported = Vec::new();
        while reported.len() < 3 * KILL_SECTORS as usize + 3 {
            // A hang guard, not a timing assertion.
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the child reported no progress in 60 s (or died)");
            reported.extend(parse(&line));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines the child printed before it died, not yet read.
        reader.join().unwrap();
        reported.extend(rx.try_iter().filter_map(|l| parse(&l)));

        assert_eq!(fs::metadata(&path).unwrap().len(), size as u64);
        let mut f = FileFlash::open(&path, size).unwrap();
        let &(last_sector, last_round) = reported.last().unwrap();
        // The sector the child was working on when killed.
        let (busy, busy_round) = if last_sector + 1 == KILL_SECTORS {
            (0, last_round + 1)
        } else {
            (last_sector + 1, last_round)
        };
        let mut checked = 0;
        for sector in 0..KILL_SECTORS {
            let round = reported
                .iter()
                .rev()
                .find(|(s, _)| *s == sector)
                .map(|&(_, r)| r)
                .unwrap();
            let mut content = vec![0u8; ERASE_SIZE];
            f.read(sector * SECTOR, &mut content).unwrap();
            if sector == busy {
                // Mid-rewrite: every word is the old, erased or new one.
                let (old, new) = (pattern(sector, round), pattern(sector, busy_round));
                for (i, word) in content.chunks(WRITE_SIZE).enumerate() {
                    let at = i * WRITE_SIZE..(i + 1) * WRITE_SIZE;
                    assert!(
                        word == &old[at.clone()] || word == [0xFF; WRITE_SIZE] || word == &new[at],
                        "sector {sector} word {i}: {word:?}"
                    );
                }
            } else {
                assert!(
                    content == pattern(sector, round),
                    "sector {sector} round {round}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, KILL_SECTORS - 1);
    }
}
