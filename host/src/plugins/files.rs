//! Reading a plugin directory's files without trusting them.
//!
//! Invariants:
//! - only regular files are read: a FIFO, socket or device is refused before it is opened
//!   for reading, and the open itself is non-blocking, so a file swapped for a FIFO between
//!   the check and the open cannot block the loader either;
//! - a file must resolve inside its plugin directory: a symlink to `/dev/zero`,
//!   `/etc/passwd` or another plugin's files is refused;
//! - at most `max` bytes are ever read: a larger file is refused by its size, and a file
//!   that grows while read is cut at `max + 1` bytes and refused;
//! - errors are one line and never quote the file's content.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a plugin file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: is a {what}, not a regular file; only regular files are read")]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{path}: resolves to {target}, outside the plugin directory")]
    Escapes { path: PathBuf, target: PathBuf },
    #[error("{path}: {size} bytes is over the limit of {max} bytes (plugins.max_component_bytes)")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// Reads `dir/name` if it is a regular file inside `dir` of at most `max` bytes.
/// Blocking; run it off the async runtime.
pub fn read_plugin_file(dir: &Path, name: &str, max: u64) -> Result<Vec<u8>, FileError> {
    let path = dir.join(name);
    let io = |e: std::io::Error| FileError::Io {
        path: path.clone(),
        message: e.to_string(),
    };
    let target = match std::fs::canonicalize(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FileError::Missing { path });
        }
        Err(e) => return Err(io(e)),
    };
    let root = std::fs::canonicalize(dir).map_err(io)?;
    if !target.starts_with(&root) {
        return Err(FileError::Escapes { path, target });
    }
    let meta = std::fs::metadata(&target).map_err(io)?;
    check_regular(&path, &meta, max)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&target)
        .map_err(io)?;
    // What was opened is what is read: check the open file again.
    check_regular(&path, &file.metadata().map_err(io)?, max)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge {
            path,
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

fn check_regular(path: &Path, meta: &std::fs::Metadata, max: u64) -> Result<(), FileError> {
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            what: kind_of(&ft),
        });
    }
    if meta.len() > max {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            max,
        });
    }
    Ok(())
}

/// A file's size, modification time (ns) and inode.
pub type Stamp = (u64, i128, u64);

/// A cheap fingerprint of a file's state (size, modification time, inode): equal twice in a
/// row means nobody wrote it in between. `None` when it does not exist.
pub fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((
        m.len(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        m.ino(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1024;

    #[test]
    fn reads_a_regular_file_and_refuses_a_larger_one() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"hello").unwrap();
        assert_eq!(read_plugin_file(d.path(), "a", MAX).unwrap(), b"hello");
        std::fs::write(d.path().join("big"), vec![0u8; 2048]).unwrap();
        let e = read_plugin_file(d.path(), "big", MAX).unwrap_err();
        assert!(matches!(e, FileError::TooLarge { size: 2048, .. }), "{e}");
        assert!(matches!(
            read_plugin_file(d.path(), "none", MAX).unwrap_err(),
            FileError::Missing { .. }
        ));
    }

    #[test]
    fn refuses_fifos_devices_and_symlinks_out_of_the_directory_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = read_plugin_file(d.path(), "fifo", MAX).unwrap_err();
        assert!(
            matches!(e, FileError::NotRegular { what: "FIFO", .. }),
            "{e}"
        );

        std::os::unix::fs::symlink("/dev/zero", d.path().join("zero")).unwrap();
        let e = read_plugin_file(d.path(), "zero", MAX).unwrap_err();
        assert!(matches!(e, FileError::Escapes { .. }), "{e}");

        std::os::unix::fs::symlink("/etc/passwd", d.path().join("passwd")).unwrap();
        let e = read_plugin_file(d.path(), "passwd", MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the plugin directory"), "{e}");
        assert!(!e.contains("root"), "error quotes the file: {e}");

        // A symlink inside the directory is fine.
        std::fs::write(d.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("real", d.path().join("link")).unwrap();
        assert_eq!(read_plugin_file(d.path(), "link", MAX).unwrap(), b"x");
    }
}
