//! Log lines go to stderr from a thread of their own: a request appends its line to a queue
//! and goes on, and the thread writes whatever has queued up in one write. Under load that
//! is one system call for many lines instead of one per line on the request's path.
//!
//! The queue holds at most [`MAX_QUEUED`] bytes: when stderr is slower than that (a full
//! pipe nobody reads), further lines are dropped and counted, and a line saying how many
//! follows once stderr takes them again. [`flush`] waits until every queued line is
//! written; the runtime calls it when the connector stops and after a panic is logged.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// Bytes queued at most; lines past it are dropped.
pub const MAX_QUEUED: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    dropped: u64,
    /// The writer thread has taken a batch and not written it yet.
    writing: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when lines are queued.
    queued: Condvar,
    /// Signalled when a batch is written.
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, line: &[u8]) {
        let mut queue = self.lock();
        if queue.bytes.len() + line.len() > MAX_QUEUED {
            queue.dropped += 1;
            return;
        }
        let was_empty = queue.bytes.is_empty();
        queue.bytes.extend_from_slice(line);
        drop(queue);
        if was_empty {
            self.queued.notify_one();
        }
    }

    /// Takes the next batch, waiting for one; `spare` becomes the queue's empty buffer.
    fn next_batch(&self, spare: Vec<u8>) -> (Vec<u8>, u64) {
        let mut queue = self.lock();
        while queue.bytes.is_empty() && queue.dropped == 0 {
            queue = self
                .queued
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        queue.writing = true;
        let dropped = std::mem::take(&mut queue.dropped);
        (std::mem::replace(&mut queue.bytes, spare), dropped)
    }

    fn batch_written(&self) {
        self.lock().writing = false;
        self.written.notify_all();
    }

    fn wait_until_written(&self) {
        let mut queue = self.lock();
        while !queue.bytes.is_empty() || queue.writing {
            queue = self
                .written
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// The writer thread's queue; `None` when the thread could not start.
static SHARED: OnceLock<Option<Arc<Shared>>> = OnceLock::new();

/// Where the log subscriber writes: the queue of the writer thread, started on first use
/// (or stderr itself, line by line, when no thread can start).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl Stderr {
    fn shared() -> Option<&'static Arc<Shared>> {
        SHARED
            .get_or_init(|| {
                let shared = Arc::new(Shared::default());
                let writer = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("log-writer".into())
                    .spawn(move || write_batches(&writer, &mut std::io::stderr()))
                    .ok()
                    .map(|_| shared)
            })
            .as_ref()
    }
}

impl Write for Stderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        match Stderr::shared() {
            Some(shared) => shared.push(line),
            None => std::io::stderr().write_all(line)?,
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Self::Writer {
        Stderr
    }
}

/// Waits until every line queued so far is written (at once when nothing was logged).
pub fn flush() {
    if let Some(Some(shared)) = SHARED.get() {
        shared.wait_until_written();
    }
}

fn write_batches(shared: &Shared, out: &mut impl Write) {
    let mut spare = Vec::new();
    loop {
        let (mut batch, dropped) = shared.next_batch(spare);
        // A failing stderr loses these lines; there is nowhere else to say so.
        let _ = out.write_all(&batch);
        if dropped > 0 {
            let note = format!("{dropped} log lines were dropped: stderr did not keep up\n");
            let _ = out.write_all(note.as_bytes());
        }
        let _ = out.flush();
        batch.clear();
        spare = batch;
        shared.batch_written();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer thread over `out`, as `Stderr` starts one over stderr.
    fn writer(out: Arc<Mutex<Vec<u8>>>) -> Arc<Shared> {
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let shared = Arc::new(Shared::default());
        let thread = Arc::clone(&shared);
        std::thread::spawn(move || write_batches(&thread, &mut Sink(out)));
        shared
    }

    #[test]
    fn lines_are_written_in_order_and_flushed() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let shared = writer(Arc::clone(&out));
        let mut expected = String::new();
        for n in 0..1_000 {
            let line = format!("line {n}\n");
            shared.push(line.as_bytes());
            expected.push_str(&line);
        }
        shared.wait_until_written();
        assert_eq!(
            String::from_utf8(out.lock().unwrap().clone()).unwrap(),
            expected
        );
    }

    #[test]
    fn lines_past_the_limit_are_dropped_and_counted() {
        let shared = Shared::default();
        let big = vec![b'x'; MAX_QUEUED - 10];
        shared.push(&big);
        shared.push(b"this line does not fit\n");
        shared.push(b"fits\n");
        let (batch, dropped) = shared.next_batch(Vec::new());
        assert_eq!(dropped, 1);
        assert_eq!(batch.len(), MAX_QUEUED - 10 + 5);
    }
}
