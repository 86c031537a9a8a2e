//! Every file the compiler reads goes through a [`FileSystem`]: the
//! configuration files of each module, `file()`, the lock file and the
//! module cache, and whether a dataset's local source exists. The command
//! line uses the disk ([`DiskFiles`]); tests can check a configuration held
//! in memory ([`MemoryFiles`]) with no directory at all.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    /// A pipe, socket or device: never read.
    Other,
}

/// Where the compiler's files come from.
pub trait FileSystem: std::fmt::Debug + Send + Sync {
    /// What `path` names, or `None` when nothing is there.
    fn kind(&self, path: &Path) -> Option<EntryKind>;

    /// The bytes of the regular file at `path`, refusing what is not a
    /// regular file and what is larger than `limit`. The error is a
    /// sentence for a diagnostic.
    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, String>;

    /// The paths directly inside `directory`, sorted.
    fn entries(&self, directory: &Path) -> std::io::Result<Vec<PathBuf>>;
}

/// The files on disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskFiles;

impl FileSystem for DiskFiles {
    fn kind(&self, path: &Path) -> Option<EntryKind> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(if metadata.is_file() {
            EntryKind::File
        } else if metadata.is_dir() {
            EntryKind::Directory
        } else {
            EntryKind::Other
        })
    }

    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, String> {
        crate::limits::read_regular_file(path, limit)
    }

    fn entries(&self, directory: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)?.filter_map(Result::ok).map(|entry| entry.path()).collect();
        entries.sort();
        Ok(entries)
    }
}

/// Files held in memory, by path; the directories are those that hold them.
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemoryFiles {
    pub fn new() -> MemoryFiles {
        MemoryFiles::default()
    }

    /// Adds (or replaces) the file at `path`.
    pub fn with(mut self, path: impl AsRef<Path>, contents: impl Into<Vec<u8>>) -> MemoryFiles {
        self.files.insert(normal(path.as_ref()), contents.into());
        self
    }
}

/// `a/./b/../c` as `a/c`: paths are compared as written, without a disk to
/// resolve them against.
pub fn normal(path: &Path) -> PathBuf {
    let mut parts: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

impl FileSystem for MemoryFiles {
    fn kind(&self, path: &Path) -> Option<EntryKind> {
        let path = normal(path);
        if self.files.contains_key(&path) {
            Some(EntryKind::File)
        } else if self.files.keys().any(|file| file.starts_with(&path)) {
            Some(EntryKind::Directory)
        } else {
            None
        }
    }

    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, String> {
        match (self.files.get(&normal(path)), self.kind(path)) {
            (Some(bytes), _) if bytes.len() as u64 > limit => {
                Err(format!("it is {} bytes, more than the {limit} mlops reads", bytes.len()))
            }
            (Some(bytes), _) => Ok(bytes.clone()),
            (None, Some(EntryKind::Directory)) => Err("it is a directory".to_owned()),
            (None, _) => Err("No such file or directory (os error 2)".to_owned()),
        }
    }

    fn entries(&self, directory: &Path) -> std::io::Result<Vec<PathBuf>> {
        let directory = normal(directory);
        if self.kind(&directory) != Some(EntryKind::Directory) {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory"));
        }
        let mut entries: Vec<PathBuf> = self
            .files
            .keys()
            .filter_map(|file| file.strip_prefix(&directory).ok()?.components().next().map(|first| directory.join(first)))
            .collect();
        entries.dedup();
        Ok(entries)
    }
}

/// The file system a check reads from: the disk unless a test says otherwise.
#[derive(Debug, Clone)]
pub struct Files(pub Arc<dyn FileSystem>);

impl Default for Files {
    fn default() -> Files {
        Files(Arc::new(DiskFiles))
    }
}

impl std::ops::Deref for Files {
    type Target = dyn FileSystem;

    fn deref(&self) -> &(dyn FileSystem + 'static) {
        self.0.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_have_directories_entries_and_limits() {
        let files = MemoryFiles::new().with("root/main.mlops.hcl", "x").with("root/modules/net/main.mlops.hcl", "y");
        assert_eq!(files.kind(Path::new("root")), Some(EntryKind::Directory));
        assert_eq!(files.kind(Path::new("root/./modules/../main.mlops.hcl")), Some(EntryKind::File));
        assert_eq!(files.kind(Path::new("root/missing")), None);
        assert_eq!(files.entries(Path::new("root")).unwrap(), [PathBuf::from("root/main.mlops.hcl"), PathBuf::from("root/modules")]);
        assert_eq!(files.read(Path::new("root/main.mlops.hcl"), 10).unwrap(), b"x");
        assert!(files.read(Path::new("root/main.mlops.hcl"), 0).unwrap_err().contains("more than"));
        assert_eq!(files.read(Path::new("root/modules"), 10).unwrap_err(), "it is a directory");
        assert!(files.entries(Path::new("elsewhere")).is_err());
    }
}
