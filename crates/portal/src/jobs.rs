//! Jobs: unguessable ids, a bounded queue, worker threads that call the backend (a
//! panic fails that job only), a wall-time limit per job, expiry of old results, and the
//! disk quota over all job folders (the oldest finished results go first).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use serde::Serialize;

use crate::{
    Backend, Coverage, Input, Limits, PredictOutput, PredictRequest, ResultFile, Stage, Summary,
    human_bytes,
};

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
    /// when a worker took it
    started: Option<Instant>,
    /// what its folder holds (measured when queued and when finished)
    disk_bytes: u64,
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

/// What a job may use: its wall time, its memory, what its data may hold.
#[derive(Debug, Clone)]
pub struct JobLimits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub data: Limits,
}

impl Default for JobLimits {
    fn default() -> Self {
        let c = crate::PortalConfig::default();
        Self {
            timeout: c.job_timeout,
            memory_bytes: c.job_memory_bytes,
            data: c.limits,
        }
    }
}

/// The jobs of one server.
#[derive(Debug)]
pub struct Jobs {
    root: PathBuf,
    ttl: Duration,
    capacity: usize,
    limits: JobLimits,
    map: Mutex<HashMap<String, Job>>,
    queue: Mutex<Option<SyncSender<Ticket>>>,
    /// the sum of the jobs' `disk_bytes` (kept with the map, read without its lock)
    job_bytes: AtomicU64,
    /// bytes of uploads being received
    inflight_bytes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes of the files under `dir` (not following links).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += e.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

impl Jobs {
    /// Job folders go under `root` (emptied of a previous server's jobs). Returns the
    /// store and the receiving end of its queue for [`start_workers`].
    pub fn new(
        root: &Path,
        ttl: Duration,
        capacity: usize,
    ) -> std::io::Result<(Arc<Self>, Receiver<Ticket>)> {
        Self::with_limits(root, ttl, capacity, JobLimits::default())
    }

    /// [`Jobs::new`] with what each job may use.
    pub fn with_limits(
        root: &Path,
        ttl: Duration,
        capacity: usize,
        limits: JobLimits,
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
            limits,
            map: Mutex::new(HashMap::new()),
            queue: Mutex::new(Some(tx)),
            job_bytes: AtomicU64::new(0),
            inflight_bytes: AtomicU64::new(0),
        });
        Ok((jobs, rx))
    }

    /// Where job folders are.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A new job's folder (created) and id.
    pub fn reserve(&self) -> std::io::Result<(String, PathBuf)> {
        let id = new_id();
        let dir = self.root.join(&id);
        std::fs::create_dir(&dir)?;
        Ok((id, dir))
    }

    /// Queues a job whose upload is in its folder; on error the folder is removed.
    /// `disk_bytes` is what its folder holds now (counted against the disk quota).
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        &self,
        id: String,
        model: String,
        input: Input,
        genome: Option<String>,
        upload_bytes: u64,
        device: String,
        disk_bytes: u64,
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
            started: None,
            disk_bytes,
        };
        self.insert(id.clone(), job);
        let ticket = Ticket {
            id: id.clone(),
            request: PredictRequest {
                model_id: model,
                input,
                genome,
                out_dir: dir.clone(),
                deadline: None,
                memory_limit_bytes: self.limits.memory_bytes,
                limits: self.limits.data,
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
            self.remove(&id);
            let _ = std::fs::remove_dir_all(&dir);
        }
        sent
    }

    fn insert(&self, id: String, job: Job) {
        let mut map = lock(&self.map);
        self.job_bytes.fetch_add(job.disk_bytes, Ordering::Relaxed);
        if let Some(old) = map.insert(id, job) {
            self.job_bytes.fetch_sub(old.disk_bytes, Ordering::Relaxed);
        }
    }

    fn remove(&self, id: &str) -> Option<Job> {
        let j = lock(&self.map).remove(id)?;
        self.job_bytes.fetch_sub(j.disk_bytes, Ordering::Relaxed);
        Some(j)
    }

    /// Bytes on disk: the job folders and the uploads being received.
    pub fn disk_used(&self) -> u64 {
        self.job_bytes.load(Ordering::Relaxed) + self.inflight_bytes.load(Ordering::Relaxed)
    }

    /// Counts `n` more bytes of an upload being received.
    pub fn add_inflight(&self, n: u64) {
        self.inflight_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Stops counting `n` bytes of an upload (refused, or become a job).
    pub fn sub_inflight(&self, n: u64) {
        self.inflight_bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// Makes room for `need` more bytes under `quota`, deleting the oldest finished jobs
    /// as far as needed; false (deleting nothing) when even deleting every finished job
    /// would not make room.
    pub fn make_room(&self, quota: u64, need: u64) -> bool {
        if self.disk_used().saturating_add(need) <= quota {
            return true;
        }
        let mut gone = Vec::new();
        {
            let mut map = lock(&self.map);
            let inflight = self.inflight_bytes.load(Ordering::Relaxed);
            let kept: u64 = map
                .values()
                .filter(|j| j.finished.is_none())
                .map(|j| j.disk_bytes)
                .sum();
            if kept.saturating_add(inflight).saturating_add(need) > quota {
                return false;
            }
            let mut finished: Vec<(f64, String)> = map
                .iter()
                .filter_map(|(id, j)| j.finished.map(|f| (f, id.clone())))
                .collect();
            finished.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (_, id) in finished {
                if self.disk_used().saturating_add(need) <= quota {
                    break;
                }
                if let Some(j) = map.remove(&id) {
                    self.job_bytes.fetch_sub(j.disk_bytes, Ordering::Relaxed);
                    tracing::info!(
                        "disk quota: deleting job {id} ({})",
                        human_bytes(j.disk_bytes)
                    );
                    gone.push(j.dir);
                }
            }
        }
        for d in gone {
            let _ = std::fs::remove_dir_all(d);
        }
        true
    }

    /// Fails the jobs computing for longer than the time limit; returns how many. (The
    /// backend is told the deadline too and should have stopped; the job's worker is
    /// busy until it returns.)
    pub fn stop_overdue(&self) -> usize {
        let limit = self.limits.timeout;
        let mut n = 0;
        for (id, j) in lock(&self.map).iter_mut() {
            if !j.status.is_finished() && j.started.is_some_and(|s| s.elapsed() > limit) {
                j.status = Status::Failed;
                j.finished = Some(now());
                j.error = Some(format!(
                    "stopped after {} s: the job ran longer than this server's limit of {} s per job (--job-timeout-seconds)",
                    j.started.map_or(0, |s| s.elapsed().as_secs()),
                    limit.as_secs()
                ));
                tracing::warn!("job {id} stopped: over the time limit");
                n += 1;
            }
        }
        n
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
        let mut gone = Vec::new();
        for id in &old {
            if let Some(j) = map.remove(id) {
                self.job_bytes.fetch_sub(j.disk_bytes, Ordering::Relaxed);
                gone.push(j.dir);
            }
        }
        drop(map);
        for d in gone {
            let _ = std::fs::remove_dir_all(d);
        }
        old.len()
    }

    /// Stops taking jobs; workers finish the queue and exit.
    pub fn close(&self) {
        lock(&self.queue).take();
    }

    fn run(&self, backend: &dyn Backend, mut ticket: Ticket) {
        let id = ticket.id.clone();
        let id = id.as_str();
        let started = Instant::now();
        ticket.request.deadline = Some(started + self.limits.timeout);
        {
            let mut map = lock(&self.map);
            match map.get_mut(id) {
                // expired or deleted for room while it waited: nothing to compute
                None => return,
                Some(j) => {
                    j.status = Status::Preprocessing;
                    j.started = Some(started);
                }
            }
        }
        let stage = |s: Stage| {
            self.set(id, |j| {
                if j.status.is_finished() {
                    return;
                }
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
        let out_dir = &ticket.request.out_dir;
        // uploads are not kept once the job has run
        for name in ["input", "upload"] {
            let p = out_dir.join(name);
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
        let size = dir_size(out_dir);
        let mut map = lock(&self.map);
        let Some(j) = map.get_mut(id) else {
            // deleted meanwhile (expired, or for room)
            drop(map);
            let _ = std::fs::remove_dir_all(out_dir);
            return;
        };
        if j.status.is_finished() {
            // failed for its time meanwhile: it keeps none of what it wrote late
            self.job_bytes.fetch_sub(j.disk_bytes, Ordering::Relaxed);
            j.disk_bytes = 0;
            drop(map);
            if let Ok(rd) = std::fs::read_dir(out_dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
            }
            return;
        }
        // the outcome and the folder's size in one step: whoever sees it done sees both
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
        self.job_bytes.fetch_sub(j.disk_bytes, Ordering::Relaxed);
        self.job_bytes.fetch_add(size, Ordering::Relaxed);
        j.disk_bytes = size;
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
        let (id, job_dir, submitted) = submit_job(&jobs, 0);
        submitted.unwrap();
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
        assert!(submit_job(&jobs, 0).2.is_ok());
        let (_, d, r) = submit_job(&jobs, 0);
        assert_eq!(r, Err(SubmitError::Busy(1)));
        assert!(!d.exists());
        assert_eq!(jobs.pending(), 1);
        jobs.close();
        assert_eq!(submit_job(&jobs, 0).2, Err(SubmitError::Stopped));
    }

    /// Reserves a job and submits it (an HDF5 input `x` in its folder, `disk` bytes on
    /// disk): its id, its folder and what the queue said.
    fn submit_job(jobs: &Jobs, disk: u64) -> (String, PathBuf, Result<(), SubmitError>) {
        let (id, dir) = jobs.reserve().unwrap();
        let submitted = jobs.submit(
            id.clone(),
            "m".into(),
            Input::Hdf5(dir.join("x")),
            None,
            1,
            "cpu".into(),
            disk,
        );
        (id, dir, submitted)
    }

    fn finished_job(jobs: &Jobs, bytes: usize, at: f64) -> (String, PathBuf) {
        let (id, dir, submitted) = submit_job(jobs, bytes as u64);
        submitted.unwrap();
        std::fs::write(dir.join("result"), vec![0u8; bytes]).unwrap();
        jobs.set(&id, |j| {
            j.status = Status::Done;
            j.finished = Some(at);
        });
        (id, dir)
    }

    #[test]
    fn the_disk_quota_deletes_the_oldest_finished_jobs_first() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, _rx) = Jobs::new(dir.path(), Duration::from_secs(3600), 8).unwrap();
        let t = now();
        let (old, old_dir) = finished_job(&jobs, 400, t - 30.0);
        let (newer, _) = finished_job(&jobs, 400, t - 20.0);
        let (newest, _) = finished_job(&jobs, 400, t - 10.0);
        assert_eq!(jobs.disk_used(), 1200);
        // room for 300 more under 1400: only the oldest goes
        assert!(jobs.make_room(1400, 300));
        assert!(jobs.view(&old).is_none() && !old_dir.exists());
        assert!(jobs.view(&newer).is_some() && jobs.view(&newest).is_some());
        assert_eq!(jobs.disk_used(), 800);
        // uploads being received count; what can never fit deletes nothing
        jobs.add_inflight(1000);
        assert!(!jobs.make_room(1400, 500));
        assert!(jobs.view(&newer).is_some());
        jobs.sub_inflight(1000);
        assert_eq!(jobs.disk_used(), 800);
        assert!(jobs.make_room(1400, 1400));
        assert_eq!(jobs.disk_used(), 0);
    }

    #[test]
    fn a_job_over_its_time_fails_and_keeps_nothing_of_what_it_wrote_late() {
        struct Sleepy;
        impl Backend for Sleepy {
            fn models(&self) -> Vec<crate::ModelInfo> {
                Vec::new()
            }
            fn status(&self) -> crate::BackendStatus {
                crate::BackendStatus {
                    device: "cpu".into(),
                    ready: true,
                    message: None,
                }
            }
            fn predict(
                &self,
                r: &PredictRequest,
                _stage: &dyn Fn(Stage),
            ) -> Result<PredictOutput, String> {
                assert!(r.deadline.is_some());
                assert_eq!(r.memory_limit_bytes, 1234);
                std::thread::sleep(Duration::from_millis(600));
                std::fs::write(r.out_dir.join("late.txt"), "x").unwrap();
                Err("never seen".into())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let limits = JobLimits {
            timeout: Duration::from_millis(100),
            memory_bytes: 1234,
            data: Limits::portal(),
        };
        let (jobs, rx) = Jobs::with_limits(dir.path(), Duration::from_secs(60), 4, limits).unwrap();
        let workers = start_workers(&jobs, rx, Arc::new(Sleepy), 1);
        let (id, job_dir, submitted) = submit_job(&jobs, 0);
        submitted.unwrap();
        let t = Instant::now();
        while jobs.stop_overdue() == 0 {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(20));
        }
        let v = jobs.view(&id).unwrap();
        assert_eq!(v.status, Status::Failed);
        assert!(v.error.unwrap().contains("--job-timeout-seconds"));
        jobs.close();
        for w in workers {
            w.join().unwrap();
        }
        let v = jobs.view(&id).unwrap();
        assert!(v.error.unwrap().contains("stopped after"));
        assert!(!job_dir.join("late.txt").exists());
    }
}
