//! Helpers that stay awake between the layers of one inference, for hgpose's own convolutions.
//!
//! Handing each convolution to tract's rayon pool as a fresh job paid a wake-up every time:
//! an idle rayon thread sleeps after a few dozen yields (microseconds), and waking it on this
//! VM cost about as much as 2 M multiply-adds, while the hourglass's convolutions come every
//! 10-100 µs. The whole default model then ran no faster on two threads than on one.
//!
//! Here a job is `tasks` calls of one closure. The calling thread takes part, and helpers take
//! tasks one at a time from an atomic counter, so a thread that falls behind (a noisy
//! neighbour) just takes fewer, and the caller never waits for a helper that has not shown up:
//! only for tasks already taken. A helper is a long-running task on tract's own pool (so
//! hgpose adds no threads to the ones `--threads` asked for): after each job it spins for
//! [`SPIN`], then yields its core until [`IDLE`] has passed, then gives the pool thread back;
//! the next job starts a new one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tract_linalg::multithread::{current_tract_executor, Executor};

/// How long a helper spins after a job before it starts yielding its core to other threads.
const SPIN: Duration = Duration::from_micros(100);
/// How long a helper waits for the next job before it gives its pool thread back.
const IDLE: Duration = Duration::from_millis(2);

/// Runs `task(t)` for `t` in `0..tasks`, on the calling thread and, when tract's executor has
/// a pool of more than one thread and there is more than one task, on helpers in that pool.
/// Returns an error when a task panicked.
pub fn for_each_task(tasks: usize, task: &(dyn Fn(usize) + Sync)) -> anyhow::Result<()> {
    let pool = match current_tract_executor() {
        Executor::MultiThread(pool) if pool.current_num_threads() > 1 && tasks > 1 => pool,
        _ => {
            return catch_unwind(AssertUnwindSafe(|| (0..tasks).for_each(task)))
                .map_err(|_| anyhow::anyhow!("a convolution task panicked"))
        }
    };
    Team::of(&pool).run(tasks, task)
}

/// One job: the closure (its lifetime erased: it is called only for tasks taken before the
/// caller saw every task done), the next task to hand out, and how many are done.
struct Job {
    task: *const (dyn Fn(usize) + Sync),
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
}

// SAFETY: the closure is `Sync`, and it is called only while `Team::run` keeps it alive.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    /// Takes tasks until none is left.
    fn work(&self) {
        loop {
            let t = self.next.fetch_add(1, Ordering::Relaxed);
            if t >= self.tasks {
                return;
            }
            // SAFETY: task `t` is not done yet, so `Team::run` still waits, and the closure
            // it borrowed is alive.
            let task = unsafe { &*self.task };
            if catch_unwind(AssertUnwindSafe(|| task(t))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// The helpers of one pool.
struct Team {
    pool: Arc<rayon::ThreadPool>,
    /// One job at a time: a second inference thread runs its tasks alone.
    turn: Mutex<()>,
    /// Bumped for each job; a helper works once per value it sees.
    generation: AtomicU64,
    job: Mutex<Option<Arc<Job>>>,
    /// Helpers running now.
    helpers: AtomicUsize,
}

impl Team {
    /// The team of `pool`, made on first use (a process has a pool per `--threads` value).
    fn of(pool: &Arc<rayon::ThreadPool>) -> &'static Team {
        static TEAMS: OnceLock<Mutex<Vec<&'static Team>>> = OnceLock::new();
        let mut teams = TEAMS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(team) = teams.iter().find(|t| Arc::ptr_eq(&t.pool, pool)) {
            return team;
        }
        let team: &'static Team = Box::leak(Box::new(Team {
            pool: pool.clone(),
            turn: Mutex::new(()),
            generation: AtomicU64::new(0),
            job: Mutex::new(None),
            helpers: AtomicUsize::new(0),
        }));
        teams.push(team);
        team
    }

    fn run(&'static self, tasks: usize, task: &(dyn Fn(usize) + Sync)) -> anyhow::Result<()> {
        // SAFETY (lifetime erased): see `Job::work`; this function returns only once every
        // task is done, and no task can be taken after that.
        let task: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(task) };
        let job = Arc::new(Job {
            task,
            tasks,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        });
        let turn = self.turn.try_lock().ok();
        if turn.is_some() {
            *self.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.clone());
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.call_helpers();
        }
        job.work();
        let waiting = Instant::now();
        while job.done.load(Ordering::Acquire) < tasks {
            if waiting.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        drop(turn);
        anyhow::ensure!(
            !job.panicked.load(Ordering::Relaxed),
            "a convolution task panicked"
        );
        Ok(())
    }

    /// Starts helpers on the pool until there is one per pool thread but the caller's.
    fn call_helpers(&'static self) {
        let wanted = self.pool.current_num_threads().saturating_sub(1);
        while self.helpers.load(Ordering::SeqCst) < wanted {
            self.helpers.fetch_add(1, Ordering::SeqCst);
            let seen = self.generation.load(Ordering::SeqCst) - 1;
            self.pool.spawn(move || self.help(seen));
        }
    }

    /// A helper: works on each new job as it comes, until none has come for [`IDLE`].
    fn help(&self, mut seen: u64) {
        while let Some(generation) = self.next_generation(seen) {
            seen = generation;
            let job = self.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(job) = job {
                job.work();
            }
        }
    }

    /// The generation after `seen`, or `None` once [`IDLE`] has passed without one (the
    /// helper has then left the team).
    fn next_generation(&self, seen: u64) -> Option<u64> {
        let idle = Instant::now();
        let mut polls = 0u32;
        loop {
            let now = self.generation.load(Ordering::SeqCst);
            if now != seen {
                return Some(now);
            }
            polls = polls.wrapping_add(1);
            if !polls.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            let elapsed = idle.elapsed();
            if elapsed < SPIN {
                std::hint::spin_loop();
            } else if elapsed < IDLE {
                std::thread::yield_now();
            } else {
                self.helpers.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::multithread::multithread_tract_scope;

    fn on_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
        multithread_tract_scope(Executor::multithread(threads), f)
    }

    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 3] {
            for tasks in [0, 1, 2, 7, 100] {
                let runs: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                on_threads(threads, || {
                    for_each_task(tasks, &|t| {
                        runs[t].fetch_add(1, Ordering::Relaxed);
                    })
                })
                .unwrap();
                assert!(
                    runs.iter().all(|r| r.load(Ordering::Relaxed) == 1),
                    "{threads} threads, {tasks} tasks"
                );
            }
        }
    }

    /// The team of the pool `on_threads` set up.
    fn current_team() -> &'static Team {
        match current_tract_executor() {
            Executor::MultiThread(pool) => Team::of(&pool),
            _ => panic!("the test set up no pool"),
        }
    }

    /// Timing-free on purpose: under qemu on a loaded CI machine a helper may leave between
    /// two jobs and a new one start on the pool's other thread, so the test checks what must
    /// hold whatever the timing: some helper takes part, never more than one at a time (two
    /// threads: the caller and one helper), and once idle the helpers leave and a later job
    /// calls one back.
    #[test]
    fn helpers_take_part_and_come_back_after_idling() {
        on_threads(2, || {
            for round in 0..2 {
                let threads_seen = Mutex::new(std::collections::HashSet::new());
                let running = AtomicUsize::new(0);
                let most_running = AtomicUsize::new(0);
                // Tasks long enough that a helper, started or still awake, takes some.
                for _ in 0..20 {
                    for_each_task(8, &|_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most_running.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(1));
                        threads_seen
                            .lock()
                            .unwrap()
                            .insert(std::thread::current().id());
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
                assert!(
                    threads_seen.lock().unwrap().len() >= 2,
                    "round {round}: no helper took a task"
                );
                assert!(
                    most_running.load(Ordering::SeqCst) <= 2,
                    "round {round}: more than one helper worked at once"
                );
                let team = current_team();
                let deadline = Instant::now() + Duration::from_secs(30);
                while team.helpers.load(Ordering::SeqCst) > 0 {
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: a helper stayed after 30 s idle"
                    );
                    std::thread::sleep(IDLE);
                }
            }
        });
    }

    #[test]
    fn a_panicking_task_is_an_error_and_the_team_goes_on() {
        on_threads(2, || {
            let result = for_each_task(4, &|t| {
                if t == 3 {
                    panic!("task three");
                }
            });
            assert!(result.is_err());
            assert!(for_each_task(4, &|_| {}).is_ok());
        });
    }
}
