//! Jobs: unguessable ids, a bounded queue, worker threads that call the backend (a
//! panic fails that job only), and expiry of old results.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use serde::Serialize;

use crate::{Backend, Coverage, Input, PredictOutput, PredictRequest, ResultFile, Stage, Summary};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Preprocessing,
    Predicting,
    Done,
    Failed,
}

impl Status {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// What the API reports of a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub model: String,
    pub status: Status,
    pub input: String,
    pub upload_bytes: u64,
    pub created_unix: f64,
    pub finished_unix: Option<f64>,
    pub seconds: Option<f64>,
    pub device: String,
    pub error: Option<String>,
    pub coverage: Option<Coverage>,
    pub summary: Option<Summary>,
    pub files: Vec<FileView>,
    /// when the job's files are deleted
    pub expires_unix: Option<f64>,
}

/// A result file with its download address.
#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    #[serde(flatten)]
    pub file: ResultFile,
    pub url: String,
    pub bytes: u64,
}

#[derive(Debug)]
struct Job {
    model: String,
    dir: PathBuf,
    input: String,
    upload_bytes: u64,
    created: f64,
    finished: Option<f64>,
    status: Status,
    device: String,
    error: Option<String>,
    output: Option<PredictOutput>,
}

/// A job ready to run.
#[derive(Debug)]
pub struct Ticket {
    pub id: String,
    pub request: PredictRequest,
}

/// Why a job could not be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    Busy(usize),
    Stopped,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A fresh job id: 128 random bits from the operating system, as hex.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` has the shape [`new_id`] gives (checked before it touches a path).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The jobs of one server.
#[derive(Debug)]
pub struct Jobs {
    root: PathBuf,
    ttl: Duration,
    capacity: usize,
    map: Mutex<HashMap<String, Job>>,
    queue: Mutex<Option<SyncSender<Ticket>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Jobs {
    /// Job folders go under `root` (emptied of a previous server's jobs). Returns the
    /// store and the receiving end of its queue for [`start_workers`].
    pub fn new(
        root: &Path,
        ttl: Duration,
        capacity: usize,
    ) -> std::io::Result<(Arc<Self>, Receiver<Ticket>)> {
        if root.exists() {
            for e in std::fs::read_dir(root)?.flatten() {
                if valid_id(&e.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        std::fs::create_dir_all(root)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let jobs = Arc::new(Self {
            root: root.to_path_buf(),
            ttl,
            capacity,
            map: Mutex::new(HashMap::new()),
            queue: Mutex::new(Some(tx)),
        });
        Ok((jobs, rx))
    }

    /// A new job's folder (created) and id.
    pub fn reserve(&self) -> std::io::Result<(String, PathBuf)> {
        let id = new_id();
        let dir = self.root.join(&id);
        std::fs::create_dir(&dir)?;
        Ok((id, dir))
    }

    /// Queues a job whose upload is in its folder; on error the folder is removed.
    pub fn submit(
        &self,
        id: String,
        model: String,
        input: Input,
        genome: Option<String>,
        upload_bytes: u64,
        device: String,
    ) -> Result<(), SubmitError> {
        let dir = self.root.join(&id);
        let job = Job {
            model: model.clone(),
            dir: dir.clone(),
            input: input.describe().to_string(),
            upload_bytes,
            created: now(),
            finished: None,
            status: Status::Queued,
            device,
            error: None,
            output: None,
        };
        lock(&self.map).insert(id.clone(), job);
        let ticket = Ticket {
            id: id.clone(),
            request: PredictRequest {
                model_id: model,
                input,
                genome,
                out_dir: dir.clone(),
            },
        };
        let sent = match lock(&self.queue).as_ref() {
            Some(tx) => tx.try_send(ticket).map_err(|e| match e {
                TrySendError::Full(_) => SubmitError::Busy(self.capacity),
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            }),
            None => Err(SubmitError::Stopped),
        };
        if sent.is_err() {
            lock(&self.map).remove(&id);
            let _ = std::fs::remove_dir_all(&dir);
        }
        sent
    }

    /// Removes a job folder that never became a job (a refused upload).
    pub fn discard(&self, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
    }

    fn set(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Some(j) = lock(&self.map).get_mut(id) {
            f(j);
        }
    }

    /// The job as the API shows it; `None` for an unknown (or malformed) id.
    pub fn view(&self, id: &str) -> Option<JobView> {
        if !valid_id(id) {
            return None;
        }
        let map = lock(&self.map);
        let j = map.get(id)?;
        let files = j
            .output
            .as_ref()
            .map(|o| {
                o.files
                    .iter()
                    .map(|f| FileView {
                        file: f.clone(),
                        url: format!("/api/jobs/{id}/files/{}", f.name),
                        bytes: std::fs::metadata(j.dir.join(&f.name)).map_or(0, |m| m.len()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(JobView {
            id: id.to_string(),
            model: j.model.clone(),
            status: j.status,
            input: j.input.clone(),
            upload_bytes: j.upload_bytes,
            created_unix: j.created,
            finished_unix: j.finished,
            seconds: j.finished.map(|f| f - j.created),
            device: j.device.clone(),
            error: j.error.clone(),
            coverage: j.output.as_ref().map(|o| o.coverage.clone()),
            summary: j.output.as_ref().map(|o| o.summary.clone()),
            files,
            expires_unix: j.finished.map(|f| f + self.ttl.as_secs_f64()),
        })
    }

    /// The path of a finished job's result file `name`, if the job lists it.
    pub fn file(&self, id: &str, name: &str) -> Option<(PathBuf, ResultFile)> {
        if !valid_id(id) {
            return None;
        }
        let map = lock(&self.map);
        let j = map.get(id)?;
        let f = j.output.as_ref()?.files.iter().find(|f| f.name == name)?;
        Some((j.dir.join(&f.name), f.clone()))
    }

    /// Jobs waiting or running.
    pub fn pending(&self) -> usize {
        lock(&self.map)
            .values()
            .filter(|j| !j.status.is_finished())
            .count()
    }

    /// Deletes finished jobs older than the time to live; returns how many.
    pub fn expire(&self) -> usize {
        let cutoff = now() - self.ttl.as_secs_f64();
        let mut map = lock(&self.map);
        let old: Vec<String> = map
            .iter()
            .filter(|(_, j)| j.finished.is_some_and(|f| f <= cutoff))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            if let Some(j) = map.remove(id) {
                let _ = std::fs::remove_dir_all(&j.dir);
            }
        }
        old.len()
    }

    /// Stops taking jobs; workers finish the queue and exit.
    pub fn close(&self) {
        lock(&self.queue).take();
    }

    fn run(&self, backend: &dyn Backend, ticket: Ticket) {
        let id = ticket.id.as_str();
        self.set(id, |j| j.status = Status::Preprocessing);
        let stage = |s: Stage| {
            self.set(id, |j| {
                j.status = match s {
                    Stage::Preprocessing => Status::Preprocessing,
                    Stage::Predicting => Status::Predicting,
                }
            })
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            backend.predict(&ticket.request, &stage)
        }));
        let result = match result {
            Ok(r) => r,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown".into());
                tracing::error!("job {id} panicked: {what}");
                Err(format!(
                    "internal error while computing the prediction ({what}); the server is fine, other jobs are not affected"
                ))
            }
        };
        // files a job lists must exist inside its folder
        let result = result.and_then(|o| {
            match o.files.iter().find(|f| {
                f.name.contains('/')
                    || f.name.contains('\\')
                    || f.name.starts_with('.')
                    || !ticket.request.out_dir.join(&f.name).is_file()
            }) {
                Some(f) => Err(format!(
                    "internal error: the result file `{}` is missing",
                    f.name
                )),
                None => Ok(o),
            }
        });
        self.set(id, |j| {
            j.finished = Some(now());
            match result {
                Ok(o) => {
                    j.status = Status::Done;
                    j.output = Some(o);
                }
                Err(e) => {
                    j.status = Status::Failed;
                    j.error = Some(e);
                }
            }
        });
        // uploads are not kept once the job has run
        for name in ["input", "upload"] {
            let p = ticket.request.out_dir.join(name);
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// Starts `n` worker threads taking jobs from `rx` until the queue is closed.
pub fn start_workers(
    jobs: &Arc<Jobs>,
    rx: Receiver<Ticket>,
    backend: Arc<dyn Backend>,
    n: usize,
) -> Vec<std::thread::JoinHandle<()>> {
    let rx = Arc::new(Mutex::new(rx));
    (0..n.max(1))
        .map(|i| {
            let (jobs, rx, backend) = (Arc::clone(jobs), Arc::clone(&rx), Arc::clone(&backend));
            std::thread::Builder::new()
                .name(format!("portal-worker-{i}"))
                .spawn(move || {
                    loop {
                        let ticket = lock(&rx).recv();
                        match ticket {
                            Ok(t) => jobs.run(backend.as_ref(), t),
                            Err(_) => break,
                        }
                    }
                })
                .expect("spawning a worker thread")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex_of_128_bits() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert!(valid_id(&a) && valid_id(&b));
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id(&a.to_uppercase()));
        assert!(!valid_id(&a[..31]));
    }

    #[test]
    fn expiry_removes_finished_jobs_and_their_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, _rx) = Jobs::new(dir.path(), Duration::ZERO, 4).unwrap();
        let (id, job_dir) = jobs.reserve().unwrap();
        jobs.submit(
            id.clone(),
            "m".into(),
            Input::Hdf5(job_dir.join("input.h5")),
            None,
            1,
            "cpu".into(),
        )
        .unwrap();
        // queued jobs never expire
        assert_eq!(jobs.expire(), 0);
        jobs.set(&id, |j| {
            j.status = Status::Done;
            j.finished = Some(now() - 1.0);
        });
        assert_eq!(jobs.expire(), 1);
        assert!(jobs.view(&id).is_none());
        assert!(!job_dir.exists());
    }

    #[test]
    fn a_full_queue_refuses_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, _rx) = Jobs::new(dir.path(), Duration::from_secs(60), 1).unwrap();
        let submit = |jobs: &Jobs| {
            let (id, d) = jobs.reserve().unwrap();
            (
                jobs.submit(
                    id,
                    "m".into(),
                    Input::Hdf5(d.join("x")),
                    None,
                    1,
                    "cpu".into(),
                ),
                d,
            )
        };
        assert!(submit(&jobs).0.is_ok());
        let (r, d) = submit(&jobs);
        assert_eq!(r, Err(SubmitError::Busy(1)));
        assert!(!d.exists());
        assert_eq!(jobs.pending(), 1);
        jobs.close();
        assert_eq!(submit(&jobs).0, Err(SubmitError::Stopped));
    }
}
