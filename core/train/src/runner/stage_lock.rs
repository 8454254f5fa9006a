//! The lock file that lets one process at a time train a shared stage-1 run, so shards of one
//! table (`--shard i/n`, possibly on several machines over a shared folder) train it once.
//!
//! The lock is `<stage-1 folder>/.lock`, created exclusively and holding `host:pid`. While held, a
//! background thread refreshes its modification time; a waiting process takes the lock over when
//! its holder is a dead process on the same host, or when the lock has not been refreshed for
//! [`STALE_AFTER`] (a holder on another machine that died). Everyone else waits and then finds
//! stage 1 finished. Two waiters that judge the same dead lock at the same moment may both take
//! it; the worst outcome is stage 1 trained twice, with identical results (training is seeded).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::runner::progress::RunObserver;
use dsma_data::error::{CoreError, Result};

/// How often the holder refreshes the lock.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A lock not refreshed for this long belongs to a process that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// How often a waiting process looks at the lock again.
const POLL: Duration = Duration::from_secs(2);

/// Timings of the lock (constants in production, short in tests).
#[derive(Debug, Clone, Copy)]
pub struct LockTimings {
    /// Refresh interval of the holder.
    pub heartbeat: Duration,
    /// Age after which a lock is taken over.
    pub stale_after: Duration,
    /// Interval between looks of a waiting process.
    pub poll: Duration,
}

impl Default for LockTimings {
    fn default() -> Self {
        LockTimings {
            heartbeat: HEARTBEAT,
            stale_after: STALE_AFTER,
            poll: POLL,
        }
    }
}

/// A held lock on a folder; released (file removed) when dropped.
pub struct StageLock {
    path: PathBuf,
    me: String,
    /// Dropping it stops the heartbeat thread.
    stop: Option<Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

/// `host:pid` of this process.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

/// Whether `holder` (`host:pid`) is a process of this host that no longer exists (Linux only;
/// elsewhere only the age of the lock tells).
fn holder_is_dead(holder: &str, me: &str) -> bool {
    let (Some((host, pid)), Some((my_host, _))) = (holder.rsplit_once(':'), me.rsplit_once(':'))
    else {
        return false;
    };
    if host != my_host || !Path::new("/proc/self").exists() {
        return false;
    }
    match pid.trim().parse::<u32>() {
        Ok(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

impl StageLock {
    /// Takes the lock of `dir` with the default timings, waiting while a live process holds it.
    pub fn acquire(dir: &Path, obs: &mut dyn RunObserver) -> Result<Self> {
        Self::acquire_with(dir, LockTimings::default(), obs)
    }

    /// Takes the lock of `dir`, waiting while a live process holds it.
    pub fn acquire_with(dir: &Path, t: LockTimings, obs: &mut dyn RunObserver) -> Result<Self> {
        let lock = Self::acquire_unless(dir, t, obs, &|| false)?;
        lock.ok_or_else(|| CoreError::invalid(dir.display().to_string(), "lock not taken"))
    }

    /// Takes the lock of `dir`, waiting while a live process holds it unless `stop()` turns true
    /// meanwhile (then `None`).
    pub fn acquire_unless(
        dir: &Path,
        t: LockTimings,
        obs: &mut dyn RunObserver,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Self>> {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        let path = dir.join(".lock");
        let me = holder_id();
        let mut told = false;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(me.as_bytes())
                        .and_then(|_| file.sync_all())
                        .map_err(|e| CoreError::io(&path, e))?;
                    return Ok(Some(Self::hold(path, me, t.heartbeat)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CoreError::io(&path, e)),
            }
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let age = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok());
            let stale = age.is_some_and(|a| a > t.stale_after);
            if stale || holder_is_dead(&holder, &me) {
                obs.message(&format!(
                    "taking over {}: its holder {holder} is gone",
                    path.display()
                ));
                // Only remove the lock we judged; a fresh one written meanwhile stays.
                if std::fs::read_to_string(&path).unwrap_or_default() == holder {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            if !told {
                obs.message(&format!(
                    "waiting for {holder}, which is working in {} (delete {} if that process is gone)",
                    dir.display(),
                    path.display()
                ));
                told = true;
            }
            if stop() {
                return Ok(None);
            }
            std::thread::sleep(t.poll);
        }
    }

    fn hold(path: PathBuf, me: String, every: Duration) -> Self {
        let (stop, stopped) = channel::<()>();
        let p = path.clone();
        let heartbeat = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                if let Ok(f) = OpenOptions::new().write(true).open(&p) {
                    let _ = f.set_modified(SystemTime::now());
                }
            }
        });
        StageLock {
            path,
            me,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        }
    }
}

impl Drop for StageLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        if std::fs::read_to_string(&self.path).unwrap_or_default() == self.me {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::progress::Silent;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A 50 ms heartbeat against a 2 s stale age: 40 refreshes per stale window, so a loaded
    /// machine (parallel tests on 2 cores) does not let a live lock look stale.
    fn fast() -> LockTimings {
        LockTimings {
            heartbeat: Duration::from_millis(50),
            stale_after: Duration::from_millis(2000),
            poll: Duration::from_millis(20),
        }
    }

    #[test]
    fn a_second_process_waits_until_the_holder_releases_even_past_the_stale_age() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let first = StageLock::acquire_with(&dir, fast(), &mut Silent).unwrap();
        assert!(dir.join(".lock").exists());
        let released = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&released);
        let d = dir.clone();
        let waiter = std::thread::spawn(move || {
            let _second = StageLock::acquire_with(&d, fast(), &mut Silent).unwrap();
            r.load(Ordering::SeqCst)
        });
        // Longer than `stale_after`: the heartbeat keeps the lock fresh.
        std::thread::sleep(Duration::from_millis(2600));
        assert!(!waiter.is_finished(), "the lock was taken while held");
        released.store(true, Ordering::SeqCst);
        drop(first);
        assert!(waiter.join().unwrap(), "acquired before the release");
        assert!(!dir.join(".lock").exists(), "released locks are removed");
    }

    #[test]
    fn a_lock_of_a_dead_process_on_this_host_is_taken_over_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        // A PID no process can have (above any pid_max): an exited child's PID could be reused
        // by the time the lock is taken, and the test would then wait out the stale age.
        let pid = u32::MAX;
        let me = holder_id();
        let host = me.rsplit_once(':').unwrap().0;
        std::fs::write(tmp.path().join(".lock"), format!("{host}:{pid}")).unwrap();
        let t = LockTimings {
            stale_after: Duration::from_secs(3600),
            ..fast()
        };
        // Taken on another thread: a regression (the dead holder not seen) would wait out the
        // hour-long stale age; the test fails after a minute instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = tmp.path().to_path_buf();
        std::thread::spawn(move || {
            let lock = StageLock::acquire_with(&dir, t, &mut Silent);
            let _ = tx.send(lock.map(|l| {
                let holder = std::fs::read_to_string(dir.join(".lock")).unwrap_or_default();
                drop(l);
                holder
            }));
        });
        let holder = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the lock of a dead process was not taken over")
            .unwrap();
        assert_eq!(holder, me);
    }

    #[test]
    fn a_lock_not_refreshed_for_the_stale_age_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        // A holder on another machine: its liveness cannot be checked, only the lock's age.
        std::fs::write(tmp.path().join(".lock"), "another-host:1").unwrap();
        let lock = StageLock::acquire_with(tmp.path(), fast(), &mut Silent).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(".lock")).unwrap(),
            holder_id()
        );
        drop(lock);
    }

    #[test]
    fn a_lock_of_another_host_is_not_broken_by_its_pid() {
        let tmp = tempfile::tempdir().unwrap();
        // The PID is dead here, but it names a process of another machine (a shared folder on
        // NFS): only the lock's age may free it.
        std::fs::write(
            tmp.path().join(".lock"),
            format!("another-host:{}", u32::MAX),
        )
        .unwrap();
        let t = LockTimings {
            stale_after: Duration::from_secs(4),
            ..fast()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = tmp.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(StageLock::acquire_with(&dir, t, &mut Silent).map(drop));
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(1)).is_err(),
            "a fresh lock of another host was taken because its PID is not alive here"
        );
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the lock was not taken over after the stale age")
            .unwrap();
    }
}
