//! Length and CRC-32 of a stored file: recorded when the case store and checkpoints write a file,
//! compared when they read it back, so a flipped byte or a truncated file is never trained on.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Length and CRC-32 (zlib polynomial) of one file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Bytes.
    pub len: u64,
    /// CRC-32 (zlib polynomial, as `gzip` and `zip` record it).
    pub crc32: u32,
}

impl FileSum {
    /// The sum of `bytes`.
    pub fn of(bytes: &[u8]) -> FileSum {
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        FileSum {
            len: bytes.len() as u64,
            crc32: crc.sum(),
        }
    }

    /// The sum of the file at `path`, read in 1 MiB pieces.
    pub fn of_file(path: &Path) -> Result<FileSum> {
        let mut file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
        let mut crc = flate2::Crc::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| CoreError::io(path, e))?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
            len += n as u64;
        }
        Ok(FileSum {
            len,
            crc32: crc.sum(),
        })
    }

    /// `None` when `got` equals `self`, else what differs, for an error message.
    pub fn mismatch(&self, got: &FileSum) -> Option<String> {
        (got != self).then(|| {
            format!(
                "{} bytes with CRC-32 {:08x}, expected {} bytes with CRC-32 {:08x}",
                got.len, got.crc32, self.len, self.crc32
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_check_value_and_a_file_read_in_pieces_agree() {
        // CRC-32 of the ASCII digits 1..9 is 0xCBF43926 (the catalogue's check value).
        assert_eq!(
            FileSum::of(b"123456789"),
            FileSum {
                len: 9,
                crc32: 0xcbf4_3926
            }
        );
        assert_eq!(FileSum::of(b"").crc32, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Longer than one piece, so the running sum crosses a read boundary.
        let bytes: Vec<u8> = (0..(3 << 19) + 7).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(FileSum::of_file(&path).unwrap(), FileSum::of(&bytes));
        let mut flipped = bytes.clone();
        flipped[1 << 20] ^= 1;
        let got = FileSum::of(&flipped);
        let message = FileSum::of(&bytes).mismatch(&got).unwrap();
        assert!(message.contains(&format!("{:08x}", got.crc32)), "{message}");
        assert!(FileSum::of(&bytes).mismatch(&FileSum::of(&bytes)).is_none());
    }
}
