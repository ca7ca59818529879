//! The object store under a data directory: opening it from a path or URL, and the handful of
//! operations storage needs (put, create-if-absent, get, list, delete), each with its error context.
//!
//! It owns the durability of single objects on a local disk (fsync of the file and its directory when
//! `sync` is on, since `object_store`'s local backend does not fsync). It must not know about tables,
//! manifests or the WAL format.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

/// Environment variable prefixes whose values configure cloud object stores (credentials, region,
/// endpoint), as the cloud SDKs read them.
const CLOUD_ENV_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

/// The object store of a cloud URL (`s3://`, `gs://`, `az://`, `http(s)://`) configured from the
/// standard credential environment variables, and the path of the URL inside it.
/// An `http://` URL is plain HTTP by the user's choice, so it is allowed (object_store refuses it
/// by default); TLS-less endpoints of the clouds need their own `*_ALLOW_HTTP` variable.
pub(crate) fn cloud_store(url: &url::Url) -> Result<(Box<dyn ObjectStore>, Path)> {
    let env = std::env::vars().filter(|(key, _)| {
        CLOUD_ENV_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
    });
    let plain_http =
        (url.scheme() == "http").then(|| ("allow_http".to_string(), "true".to_string()));
    object_store::parse_url_opts(url, env.chain(plain_http))
        .map_err(|e| Error::object_store(url.as_str(), e))
}

/// The store behind `url` in `runtime`: the one registered for its scheme and host (local files
/// always are), or a cloud store configured from the standard credential environment variables
/// ([`cloud_store`]), registered in `runtime` for the next reads.
pub(crate) fn store_for(
    runtime: &RuntimeEnv,
    url: &ListingTableUrl,
) -> Result<Arc<dyn ObjectStore>> {
    if let Ok(store) = runtime.object_store(url.object_store()) {
        return Ok(store);
    }
    let store_url = url.object_store();
    let root: &url::Url = store_url.as_ref();
    let (store, _) = cloud_store(root)?;
    let store: Arc<dyn ObjectStore> = Arc::from(store);
    runtime.register_object_store(root, Arc::clone(&store));
    Ok(store)
}

/// An opened object store rooted at the data directory.
#[derive(Debug)]
pub(crate) struct Backend {
    /// The store, with every path relative to the data directory.
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The data directory on the local file system, when it is local.
    pub(crate) local_root: Option<PathBuf>,
    /// Whether acknowledged writes are fsynced.
    pub(crate) sync: bool,
    /// How the user named the data directory, for messages.
    pub(crate) display: String,
    /// Held (with an OS file lock) while this process uses a local data directory, so a second
    /// process cannot interleave WAL files and manifest versions with ours.
    _lock: Option<std::fs::File>,
}

impl Backend {
    /// Open `url_or_path`: a plain path or `file://` URL is a local directory (created if missing);
    /// `s3://`, `gs://`, `az://` and other URLs go through `object_store::parse_url_opts` with
    /// credentials from the standard environment variables.
    pub(crate) fn open(url_or_path: &str, sync: bool) -> Result<Self> {
        let display = url_or_path.to_string();
        let local = match url_or_path.split_once("://") {
            None => Some(PathBuf::from(url_or_path)),
            Some(("file", _)) => {
                let url = url::Url::parse(url_or_path).map_err(|e| {
                    Error::Config(format!("bad data directory URL {url_or_path}: {e}"))
                })?;
                let path = url.to_file_path().map_err(|()| {
                    Error::Config(format!(
                        "data directory URL {url_or_path} is not a local path"
                    ))
                })?;
                Some(path)
            }
            Some(_) => None,
        };
        if let Some(dir) = local {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
            let root = dir
                .canonicalize()
                .map_err(|e| Error::io(dir.display().to_string(), e))?;
            let lock = lock_dir(&root)?;
            let store = LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| Error::object_store(root.display().to_string(), e))?;
            return Ok(Self {
                store: Arc::new(store),
                local_root: Some(root),
                sync,
                display,
                _lock: Some(lock),
            });
        }
        let url = url::Url::parse(url_or_path)
            .map_err(|e| Error::Config(format!("bad data directory URL {url_or_path}: {e}")))?;
        let (store, prefix) = cloud_store(&url)?;
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(Self {
            store,
            local_root: None,
            sync,
            display,
            _lock: None,
        })
    }

    /// The local file behind `path`, when the data directory is local.
    pub(crate) fn local_path(&self, path: &Path) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        Some(
            path.parts()
                .fold(root.clone(), |acc, part| acc.join(part.as_ref())),
        )
    }

    /// Write `bytes` at `path`, replacing what is there.
    pub(crate) async fn put(&self, path: &Path, bytes: Bytes) -> Result<()> {
        self.store
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(|e| Error::object_store(path.as_ref(), e))?;
        self.fsync(path).await
    }

    /// Write `bytes` at `path` only if nothing is there; `Ok(false)` when something is. This is what
    /// makes a versioned manifest name a commit point.
    pub(crate) async fn put_new(&self, path: &Path, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => {
                self.fsync(path).await?;
                Ok(true)
            }
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(Error::object_store(path.as_ref(), e)),
        }
    }

    /// Read the whole object at `path`.
    pub(crate) async fn get(&self, path: &Path) -> Result<Bytes> {
        let result = self
            .store
            .get(path)
            .await
            .map_err(|e| Error::object_store(path.as_ref(), e))?;
        result
            .bytes()
            .await
            .map_err(|e| Error::object_store(path.as_ref(), e))
    }

    /// Every object under `prefix` (recursively).
    pub(crate) async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        let listing = self.store.list(Some(prefix)).try_collect::<Vec<_>>().await;
        match listing {
            Ok(objects) => Ok(objects),
            // A local prefix that was never created lists as an error on some platforms.
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(Error::object_store(prefix.as_ref(), e)),
        }
    }

    /// Delete `path`; deleting what is already gone succeeds.
    pub(crate) async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::object_store(path.as_ref(), e)),
        }
    }

    /// Delete every object under `prefix`, and on a local disk the emptied directories too.
    pub(crate) async fn delete_prefix(&self, prefix: &Path) -> Result<()> {
        for meta in self.list(prefix).await? {
            self.delete(&meta.location).await?;
        }
        if let Some(dir) = self.local_path(prefix) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(dir.display().to_string(), e)),
            }
        }
        Ok(())
    }

    /// Make a just-written local object durable: the file's data, then the directory entry that
    /// names it. Object stores are durable once `put` returns, so nothing to do there.
    pub(crate) async fn fsync(&self, path: &Path) -> Result<()> {
        if !self.sync {
            return Ok(());
        }
        let Some(file) = self.local_path(path) else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || fsync_file_and_dir(&file))
            .await
            .map_err(|e| Error::Internal(format!("fsync task failed: {e}")))?
    }
}

/// Take the exclusive lock of a local data directory. The OS releases it when the process dies,
/// so a crash never leaves the directory locked.
fn lock_dir(root: &FsPath) -> Result<std::fs::File> {
    let path = root.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(path.display().to_string(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InUse(root.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path.display().to_string(), e)),
    }
}

/// fsync a file and the directory that holds it.
pub(crate) fn fsync_file_and_dir(file: &FsPath) -> Result<()> {
    let handle = std::fs::File::open(file).map_err(|e| Error::io(file.display().to_string(), e))?;
    handle
        .sync_all()
        .map_err(|e| Error::io(file.display().to_string(), e))?;
    if let Some(dir) = file.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// fsync a directory so that entries created or removed in it survive a power loss.
pub(crate) fn fsync_dir(dir: &FsPath) -> Result<()> {
    let handle = std::fs::File::open(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    handle
        .sync_all()
        .map_err(|e| Error::io(dir.display().to_string(), e))
}
