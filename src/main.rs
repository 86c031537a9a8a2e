//! The `mlops` command line: argument parsing, rendering and exit codes.
//! The compiler, the engine and the providers live in their own crates; only
//! this crate knows about terminals.

/// Standard output that never panics: once the reader has gone (`mlops
/// schema | head -1`), the rest is dropped and the command carries on to its
/// end. A command that stopped half-way because nobody reads its output
/// (an apply, a publish) would be worse than one that prints into the void.
pub(crate) mod output {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    static CLOSED: AtomicBool = AtomicBool::new(false);
    static ERRORS_CLOSED: AtomicBool = AtomicBool::new(false);

    pub fn write(arguments: std::fmt::Arguments<'_>) {
        if CLOSED.load(Ordering::Relaxed) {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if stdout.write_fmt(arguments).and_then(|()| stdout.flush()).is_err() {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }

    /// The same, for standard error.
    pub fn write_error(arguments: std::fmt::Arguments<'_>) {
        if ERRORS_CLOSED.load(Ordering::Relaxed) {
            return;
        }
        if std::io::stderr().lock().write_fmt(arguments).is_err() {
            ERRORS_CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// `print!` to standard output, through [`output::write`].
macro_rules! out {
    ($($argument:tt)*) => { $crate::output::write(format_args!($($argument)*)) };
}

/// `println!` to standard output, through [`output::write`].
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($argument:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($argument)*))) };
}

/// `eprint!` to standard error, through [`output::write_error`].
macro_rules! err {
    ($($argument:tt)*) => { $crate::output::write_error(format_args!($($argument)*)) };
}

/// `eprintln!` to standard error, through [`output::write_error`].
macro_rules! errln {
    ($($argument:tt)*) => { $crate::output::write_error(format_args!("{}\n", format_args!($($argument)*))) };
}

/// mimalloc instead of the system allocator: checking a large
/// configuration makes millions of small, short-lived allocations, and
/// glibc's malloc spent a third of `validate`'s time consolidating and
/// freeing them (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod plan_render;
mod schema_text;

/// mimalloc's `purge_delay` option: its place in `mi_option_t`
/// (mimalloc.h), which libmimalloc-sys leaves unnamed.
const MIMALLOC_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory stays with the allocator. mimalloc otherwise gives it back
/// to the system ("purges" it) and the next allocation there faults the
/// pages in again, each zeroed once more by the kernel: `validate` of
/// 100,000 resources purged 260 MB, and ran 1.8 s without purging and
/// 2.5 s with it (docs/benchmarks.md). mlops is a command that ends, and
/// its peak memory is the same either way.
fn keep_freed_memory() {
    // SAFETY: sets one integer option before any other thread exists, as
    // mimalloc asks of its option setters.
    unsafe { libmimalloc_sys::mi_option_set(MIMALLOC_PURGE_DELAY, -1) }
}

fn main() {
    keep_freed_memory();
    std::process::exit(cli::run());
}

#[cfg(test)]
mod tests {
    use super::MIMALLOC_PURGE_DELAY;

    /// The option is unnamed in libmimalloc-sys: were its place to move in a
    /// new mimalloc, this would set some other option without a word.
    #[test]
    fn the_option_set_at_start_is_mimallocs_purge_delay() {
        // Its documented default in mimalloc 3 (options.c): a second. Tests
        // never call `keep_freed_memory`, which only `main` does.
        // SAFETY: reads one integer option.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MIMALLOC_PURGE_DELAY) }, 1000);
    }
}
