//! What a thread keeps for the heads it submits to, in one thread-local:
//! per head (by path list version), the list it read last, weakly, and its
//! `service-time` run on that list ([`crate::run`]); and its latency
//! sampler. One access gives a command its list, its run and its sampler.
//!
//! A command whose head's version matches its thread's entry takes the
//! list from there (an atomic load and a reference-count increment),
//! without arc-swap's load. Weak references: a list replaced on the head
//! is freed (with the controllers of removed paths) when the commands that
//! hold it finish, whatever the threads' entries hold; an entry of a
//! replaced list has an old version and is not used again. A new version
//! (a list replaced, or [`crate::path::PathList::bump`]ed when what its
//! paths allow changed) also ends the thread's run on it.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

use nvmp_host::IoRequest;

use crate::latency::{Sampler, Timing};
use crate::path::{Path, PathList, Paths};
use crate::run::Run;

/// Entries per thread (lists of different heads, by version).
const ENTRIES: usize = 16;

struct Entry {
    /// The version of `list` (0: none).
    version: Cell<u64>,
    list: RefCell<Weak<Vec<Arc<Path>>>>,
    run: Run,
}

impl Entry {
    const fn new() -> Entry {
        Entry {
            version: Cell::new(0),
            list: RefCell::new(Weak::new()),
            run: Run::new(),
        }
    }

    /// The list of version `v`, if this entry holds it still.
    #[inline(always)]
    fn get(&self, v: u64) -> Option<Paths> {
        if self.version.get() != v {
            return None;
        }
        self.list.try_borrow().ok()?.upgrade()
    }

    /// Read `list` (loaded after its version `v`: that version's list or a
    /// newer one) and hold it as version `v`, with no run.
    #[cold]
    #[inline(never)]
    fn fill(&self, list: &PathList, v: u64) -> Paths {
        let paths = list.load_full();
        if let Ok(mut w) = self.list.try_borrow_mut() {
            *w = Arc::downgrade(&paths);
            self.version.set(v);
        } else {
            self.version.set(0);
        }
        self.run.reset();
        paths
    }
}

struct Local {
    sampler: Sampler,
    entries: [Entry; ENTRIES],
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            sampler: Sampler::new(),
            entries: [const { Entry::new() }; ENTRIES],
        }
    };
}

/// `list`'s current paths.
#[inline(always)]
pub(crate) fn current(list: &PathList) -> Paths {
    let v = list.version();
    match LOCAL.try_with(|l| l.entries[v as usize % ENTRIES].get(v)) {
        Ok(Some(paths)) => paths,
        Ok(None) => LOCAL
            .try_with(|l| l.entries[v as usize % ENTRIES].fill(list, v))
            .unwrap_or_else(|_| list.load_full()),
        // The thread's entries are gone (thread exit).
        Err(_) => list.load_full(),
    }
}

/// `service-time`'s fast path for one command on `list`, in one
/// thread-local access: the current paths, the command's timing, and the
/// path [`crate::latency::pick`] chooses with this thread's run on the
/// list (None: ask `select`).
///
/// Panics if called while this thread's thread-locals are being destroyed,
/// as `thread_local!`'s `with` does: a command is not submitted from a
/// thread-local's destructor.
#[inline(always)]
pub(crate) fn current_and_pick(list: &PathList, req: &IoRequest) -> (Paths, Timing, Option<usize>) {
    let v = list.version();
    let (paths, tm, i) = LOCAL.with(|l| {
        let e = &l.entries[v as usize % ENTRIES];
        let paths = match e.get(v) {
            Some(p) => p,
            None => e.fill(list, v),
        };
        let tm = Timing::start_with(&l.sampler, req, paths.len());
        let i = crate::latency::pick(&paths, &tm, &e.run, l.sampler.epoch());
        (paths, tm, i.map(|i| i as u32))
    });
    (paths, tm, i.map(|i| i as usize))
}

/// Run `f` with this thread's sampler.
pub(crate) fn with_sampler<R>(f: impl FnOnce(&Sampler) -> R) -> R {
    LOCAL.with(|l| f(&l.sampler))
}
