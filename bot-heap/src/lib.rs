//! The process's heap: the allocator of the static executables, and giving freed memory
//! back to the system after a catalogue load.
//!
//! Loading 10,000 aliases parses a few megabytes of JSON and builds the index on a blocking
//! thread; what that leaves behind once the catalogue is installed is free memory that the
//! allocator keeps unless told otherwise, and an idle bot never tells it. Static builds
//! (mimalloc): idle RSS at 10,000 aliases 32.2 → 23.5 MiB with [`configure`]; glibc builds
//! (`cargo build --release`): 32.4 → 29.2 MiB with [`release_freed`]. docs/operations.md,
//! "Performance", has the figures and the command.
//!
//! This is the workspace's only crate with unsafe code: two calls into the allocators' C
//! APIs, each allowed where it is made, with its SAFETY note.

/// The allocator of the static musl executables (what `scripts/build-static` and the image
/// ship). With musl's own `malloc` the threads that parse a large catalogue queue on its
/// lock (10,000 aliases loaded in 0.5 to 2 s instead of 0.13 s) and each command costs a
/// third more CPU. glibc builds keep glibc's allocator: mimalloc was no faster per command
/// there and held 47 MiB instead of 36 when idle at 10,000 aliases.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc 2's
/// `include/mimalloc.h`; the Rust bindings do not name it).
#[cfg(target_env = "musl")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's default purge delay, in milliseconds: what [`MI_OPTION_PURGE_DELAY`] reads
/// when neither the environment nor the program set it.
#[cfg(target_env = "musl")]
const MI_DEFAULT_PURGE_DELAY: std::ffi::c_long = 10;

/// Tunes the allocator; called once, first thing in the bot's `main`.
///
/// Static builds: mimalloc returns pages freed in bulk to the system at once (purge delay
/// 0) instead of 10 ms later. Its delayed purge runs only when the allocator is next
/// called, and an idle bot does not call it, so the memory freed after a catalogue load
/// stayed resident for good. `MIMALLOC_PURGE_DELAY` in the environment still wins.
pub fn configure() {
    #[cfg(target_env = "musl")]
    {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: mi_option_get and mi_option_set read and write one of mimalloc's option
        // slots; any option number below `_mi_option_last` and any value are valid. The
        // default checked first guards against the number naming another option in a
        // different mimalloc version.
        #[allow(unsafe_code)]
        unsafe {
            if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_DEFAULT_PURGE_DELAY {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
            } else {
                tracing::debug!("mimalloc's purge delay is not the expected default; left alone");
            }
        }
    }
}

/// Gives memory freed since the last call back to the system; called after a catalogue
/// is installed (the JSON pages and the parse's scratch are free by then).
///
/// glibc builds: `malloc_trim`, which releases the free pages of every arena (glibc returns
/// only the top of the main heap by itself, and the index is built on another thread, in
/// another arena). Static builds: nothing to do, mimalloc purges at once ([`configure`]).
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks; 0 asks it to
    // keep no padding at the top of the heap.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
