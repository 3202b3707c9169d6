//! Block-STM's collaborative scheduler: an execution index and a validation index that workers
//! advance together, incarnations, and suspension of a transaction on the one it waits for.
//!
//! Follows Gelashvili et al., "Block-STM: Scaling Blockchain Execution by Turning Ordering Curse
//! to a Performance Blessing" (2022), Algorithms 4 and 5.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use parking_lot::Mutex;

use super::types::TxIdx;

/// State of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

/// Work for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Execute incarnation `.1` of transaction `.0`.
    Execute(TxIdx, u32),
    /// Validate incarnation `.1` of transaction `.0`.
    Validate(TxIdx, u32),
}

/// The scheduler of one block.
pub struct Scheduler {
    n: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    decrease_cnt: AtomicUsize,
    num_active_tasks: AtomicUsize,
    done_marker: AtomicBool,
    status: Vec<Mutex<(u32, Status)>>,
    dependencies: Vec<Mutex<Vec<TxIdx>>>,
}

impl Scheduler {
    /// A scheduler for `n` transactions, none executed yet.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            execution_idx: AtomicUsize::new(0),
            validation_idx: AtomicUsize::new(0),
            decrease_cnt: AtomicUsize::new(0),
            num_active_tasks: AtomicUsize::new(0),
            done_marker: AtomicBool::new(n == 0),
            status: (0..n)
                .map(|_| Mutex::new((0, Status::ReadyToExecute)))
                .collect(),
            dependencies: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// A scheduler for `n` transactions whose first incarnations already ran (recorded in the
    /// multi-version memory); validation starts at `validate_from`.
    pub fn new_executed(n: usize, validate_from: TxIdx) -> Self {
        let s = Self::new(n);
        for st in &s.status {
            *st.lock() = (0, Status::Executed);
        }
        s.execution_idx.store(n, SeqCst);
        s.validation_idx.store(validate_from.min(n), SeqCst);
        s.done_marker.store(validate_from >= n, SeqCst);
        s
    }

    /// Whether all transactions are executed and validated.
    pub fn done(&self) -> bool {
        self.done_marker.load(SeqCst)
    }

    /// Whether the latest incarnation of `tx` finished executing.
    pub fn is_executed(&self, tx: TxIdx) -> bool {
        self.status[tx].lock().1 == Status::Executed
    }

    fn decrease_execution_idx(&self, target: TxIdx) {
        self.execution_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn decrease_validation_idx(&self, target: TxIdx) {
        self.validation_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(SeqCst);
        if self
            .execution_idx
            .load(SeqCst)
            .min(self.validation_idx.load(SeqCst))
            >= self.n
            && self.num_active_tasks.load(SeqCst) == 0
            && observed == self.decrease_cnt.load(SeqCst)
        {
            self.done_marker.store(true, SeqCst);
        }
    }

    fn try_incarnate(&self, tx: TxIdx) -> Option<Task> {
        if tx < self.n {
            let mut st = self.status[tx].lock();
            if st.1 == Status::ReadyToExecute {
                st.1 = Status::Executing;
                return Some(Task::Execute(tx, st.0));
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }

    fn next_version_to_execute(&self) -> Option<Task> {
        if self.execution_idx.load(SeqCst) >= self.n {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        let tx = self.execution_idx.fetch_add(1, SeqCst);
        self.try_incarnate(tx)
    }

    fn next_version_to_validate(&self) -> Option<Task> {
        if self.validation_idx.load(SeqCst) >= self.n {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        let tx = self.validation_idx.fetch_add(1, SeqCst);
        if tx < self.n {
            let st = *self.status[tx].lock();
            if st.1 == Status::Executed {
                return Some(Task::Validate(tx, st.0));
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }

    /// The next task, validation first when it lags behind execution.
    pub fn next_task(&self) -> Option<Task> {
        if self.validation_idx.load(SeqCst) < self.execution_idx.load(SeqCst) {
            self.next_version_to_validate()
        } else {
            self.next_version_to_execute()
        }
    }

    /// Suspends `tx` until `blocking` finishes executing. `false` when it already has: run again.
    pub fn add_dependency(&self, tx: TxIdx, blocking: TxIdx) -> bool {
        {
            let mut deps = self.dependencies[blocking].lock();
            if self.status[blocking].lock().1 == Status::Executed {
                return false;
            }
            self.status[tx].lock().1 = Status::Aborting;
            deps.push(tx);
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        true
    }

    fn set_ready_status(&self, tx: TxIdx) {
        let mut st = self.status[tx].lock();
        *st = (st.0 + 1, Status::ReadyToExecute);
    }

    fn resume_dependencies(&self, deps: Vec<TxIdx>) {
        let Some(min) = deps.iter().min().copied() else {
            return;
        };
        for d in deps {
            self.set_ready_status(d);
        }
        self.decrease_execution_idx(min);
    }

    /// Marks an execution finished; may hand back the validation of it.
    pub fn finish_execution(
        &self,
        tx: TxIdx,
        incarnation: u32,
        wrote_new_location: bool,
    ) -> Option<Task> {
        self.status[tx].lock().1 = Status::Executed;
        let deps = std::mem::take(&mut *self.dependencies[tx].lock());
        self.resume_dependencies(deps);
        if self.validation_idx.load(SeqCst) > tx {
            if wrote_new_location {
                self.decrease_validation_idx(tx);
            } else {
                return Some(Task::Validate(tx, incarnation));
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }

    /// Claims the abort of a failed validation; `false` when another worker already did.
    pub fn try_validation_abort(&self, tx: TxIdx, incarnation: u32) -> bool {
        let mut st = self.status[tx].lock();
        if *st == (incarnation, Status::Executed) {
            st.1 = Status::Aborting;
            true
        } else {
            false
        }
    }

    /// Marks a validation finished; after an abort, may hand back the re-execution.
    pub fn finish_validation(&self, tx: TxIdx, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(tx);
            self.decrease_validation_idx(tx + 1);
            if self.execution_idx.load(SeqCst) > tx {
                return self.try_incarnate(tx);
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }
}
