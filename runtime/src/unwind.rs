//! Stack unwinding without allocating, locking or touching memory that may
//! not be mapped: in the CPU sampler's signal handler, and in the allocator
//! hook when the heap profiler samples an allocation.
//!
//! Rust binaries keep `.eh_frame` even in default release builds, so stacks
//! are unwound from DWARF CFI with framehop. Everything framehop needs is
//! prepared before the timers are armed: the loaded modules are enumerated
//! with `dl_iterate_phdr` and their `.eh_frame_hdr`, `.eh_frame` and text
//! segments referenced in place (they are mapped for the life of the
//! module); caches and stack buffers are allocated into a small pool.
//!
//! In the handler, the interrupted thread's stack is first copied with one
//! `process_vm_readv` call, split into page-sized pieces so that the copy
//! stops cleanly at the end of the mapping instead of faulting; framehop
//! then reads only that copy. A corrupt frame can end a stack early but can
//! never crash the process.
//!
//! Those references stay valid because the unwinder holds each shared
//! object open (`dlopen(RTLD_NOLOAD)`) until it is dropped: a `dlclose` by
//! the application while sampling leaves the object mapped, so no other
//! library can land at its addresses and the tables framehop reads cannot
//! dangle.
//!
//! Limits: modules loaded after `start` (dlopen) are not unwound through;
//! stacks deeper than the 128 KiB copy are cut at the copy's end.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering::*};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, MustNotAllocateDuringUnwind, Unwinder};

/// Bytes of stack copied per sample at most, and at first: most stacks fit
/// in the first copy; a deeper one is copied again in full.
const STACK_COPY: usize = 128 * 1024;
const FIRST_COPY: usize = 16 * 1024;
const PAGE: usize = 4096;

type Data = &'static [u8];
type Native = UnwinderX86_64<Data, MustNotAllocateDuringUnwind>;

/// Frames one unwind returns at most when it keeps them in its scratch.
pub(crate) const SCRATCH_FRAMES: usize = 128;

/// What one unwind works with, kept off the interrupted thread's stack
/// (which may be small and nearly full): the stack copy, framehop's cache,
/// the frames found and the copy's page list.
struct Scratch {
    busy: AtomicBool,
    cache: std::cell::UnsafeCell<CacheX86_64<MustNotAllocateDuringUnwind>>,
    stack: std::cell::UnsafeCell<Box<[u64]>>,
    frames: std::cell::UnsafeCell<Box<[u64]>>,
    pages: std::cell::UnsafeCell<Box<[libc::iovec]>>,
}

// SAFETY: the UnsafeCells are only touched by the holder of `busy`, which
// is taken with a compare-exchange, so at most one handler uses a scratch
// area at a time.
unsafe impl Sync for Scratch {}
// SAFETY: the page list's pointers are only written and read during one
// unwind, by the holder of `busy`; they point at nothing between unwinds.
unsafe impl Send for Scratch {}

pub(crate) struct StackUnwinder {
    unwinder: Native,
    scratch: Box<[Scratch]>,
    pub(crate) modules: usize,
    /// Handles that keep the shared objects the tables point into mapped.
    #[allow(dead_code, reason = "held for its Drop: it closes the handles")]
    pinned: Vec<Pin>,
}

/// One reference to a loaded shared object, released on drop.
struct Pin(*mut libc::c_void);

// SAFETY: a dlopen handle may be closed from any thread.
unsafe impl Send for Pin {}
// SAFETY: the handle is never used, only closed once, on drop.
unsafe impl Sync for Pin {}

impl Pin {
    /// A new reference to the already loaded object at `path`, if it is.
    fn loaded(path: &str) -> Option<Pin> {
        let path = std::ffi::CString::new(path).ok()?;
        // SAFETY: a NUL-terminated path; RTLD_NOLOAD only looks the object
        // up (and counts one more reference), it never loads or runs code.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        (!handle.is_null()).then_some(Pin(handle))
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        // SAFETY: a handle dlopen returned, closed exactly once.
        unsafe { libc::dlclose(self.0) };
    }
}

/// Register state of the thread to unwind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registers {
    pub(crate) ip: u64,
    pub(crate) sp: u64,
    pub(crate) bp: u64,
}

impl Registers {
    /// The calling function's own registers (inlined into it, so that the
    /// unwind starts in its frame).
    #[inline(always)]
    pub(crate) fn here() -> Self {
        let (ip, sp, bp): (u64, u64, u64);
        // SAFETY: reads three registers into outputs; touches no memory,
        // the stack or the flags.
        unsafe {
            std::arch::asm!(
                "lea {ip}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                ip = out(reg) ip,
                sp = out(reg) sp,
                bp = out(reg) bp,
                options(nomem, nostack, preserves_flags),
            );
        }
        Self { ip, sp, bp }
    }
}

struct Segment {
    vaddr: Range<u64>,
    executable: bool,
}

impl StackUnwinder {
    /// Enumerates loaded modules and reserves `concurrency` scratch areas.
    pub(crate) fn new(concurrency: usize) -> Self {
        let mut unwinder = Native::new();
        let mut modules = 0;
        let mut pinned = Vec::new();
        for_each_module(|name, shared_object, base, segments, eh_frame_hdr| {
            let Some(text) = segments.iter().find(|s| s.executable) else {
                return;
            };
            if shared_object {
                // Unloaded since the listing, or reloaded elsewhere: skip it
                // rather than point at memory that is not its own.
                let Some(pin) = Pin::loaded(&name) else {
                    return;
                };
                if !is_loaded_at(&name, base) {
                    return;
                }
                pinned.push(pin);
            }
            // SAFETY: the segment is mapped by the loader at `base + vaddr`
            // for as long as the module stays loaded.
            let mapped = |r: &Range<u64>| -> Data {
                unsafe {
                    std::slice::from_raw_parts(
                        (base + r.start) as *const u8,
                        (r.end - r.start) as usize,
                    )
                }
            };
            let hdr_data = mapped(&eh_frame_hdr);
            let Some(eh_frame_start) = eh_frame_address(hdr_data, eh_frame_hdr.start) else {
                return;
            };
            // `.eh_frame` ends at most where its segment ends; gimli stops at
            // the terminator before that.
            let Some(eh_segment) = segments.iter().find(|s| s.vaddr.contains(&eh_frame_start))
            else {
                return;
            };
            let eh_frame = eh_frame_start..eh_segment.vaddr.end;
            let info = ExplicitModuleSectionInfo {
                base_svma: 0,
                text_svma: Some(text.vaddr.clone()),
                text: Some(mapped(&text.vaddr)),
                eh_frame_svma: Some(eh_frame.clone()),
                eh_frame: Some(mapped(&eh_frame)),
                eh_frame_hdr_svma: Some(eh_frame_hdr.clone()),
                eh_frame_hdr: Some(hdr_data),
                ..Default::default()
            };
            let avma = base + text.vaddr.start..base + text.vaddr.end;
            unwinder.add_module(framehop::Module::new(name, avma, base, info));
            modules += 1;
        });
        let scratch = (0..concurrency.max(1))
            .map(|_| Scratch {
                busy: AtomicBool::new(false),
                cache: std::cell::UnsafeCell::new(CacheX86_64::new_in()),
                stack: std::cell::UnsafeCell::new(vec![0u64; STACK_COPY / 8].into_boxed_slice()),
                frames: std::cell::UnsafeCell::new(vec![0u64; SCRATCH_FRAMES].into_boxed_slice()),
                pages: std::cell::UnsafeCell::new(
                    vec![
                        libc::iovec {
                            iov_base: std::ptr::null_mut(),
                            iov_len: 0,
                        };
                        STACK_COPY / PAGE + 1
                    ]
                    .into_boxed_slice(),
                ),
            })
            .collect();
        Self {
            unwinder,
            scratch,
            modules,
            pinned,
        }
    }

    pub(crate) fn reserved_bytes(&self) -> usize {
        self.scratch.len()
            * (STACK_COPY
                + SCRATCH_FRAMES * 8
                + (STACK_COPY / PAGE + 1) * std::mem::size_of::<libc::iovec>()
                + std::mem::size_of::<CacheX86_64<MustNotAllocateDuringUnwind>>())
    }

    /// Unwinds from `regs` into `out`, leaf first. Async-signal-safe.
    /// Returns `None` when every scratch area is in use (the sample is
    /// dropped), else the depth.
    pub(crate) fn unwind(&self, regs: Registers, out: &mut [u64]) -> Option<usize> {
        self.unwind_with(regs, |frames| {
            let depth = frames.len().min(out.len());
            out[..depth].copy_from_slice(&frames[..depth]);
            depth
        })
    }

    // safe zone: no lock, no allocation (runtime/tests/layers.rs)
    /// Unwinds from `regs` and hands the frames (leaf first, at most
    /// [`SCRATCH_FRAMES`]) to `f`, all in a scratch area rather than on the
    /// caller's stack: the signal handler's way. Async-signal-safe.
    /// Returns `None` when every scratch area is in use.
    pub(crate) fn unwind_with<R>(&self, regs: Registers, f: impl FnOnce(&[u64]) -> R) -> Option<R> {
        let scratch = self.scratch.iter().find(|s| {
            s.busy
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok()
        })?;
        // SAFETY: `busy` is ours until released below (see `Sync` impl).
        let (cache, stack, frames, pages) = unsafe {
            (
                &mut *scratch.cache.get(),
                &mut *scratch.stack.get(),
                &mut *scratch.frames.get(),
                &mut *scratch.pages.get(),
            )
        };
        let mut depth = 0;
        for copy in [FIRST_COPY, STACK_COPY] {
            let copied = copy_stack(regs.sp, &mut stack[..copy / 8], pages);
            let (walked, ran_off) =
                self.walk(regs, cache, &stack[..copied / 8], copied == copy, frames);
            depth = walked;
            if !ran_off {
                break;
            }
        }
        let result = f(&frames[..depth]);
        scratch.busy.store(false, Release);
        Some(result)
    }
    // end of safe zone

    // safe zone: no lock, no allocation (runtime/tests/layers.rs)
    /// Unwinds over a stack copy; also says whether it stopped for want of
    /// more copy (when `complete` is false, the copy ended at the mapping's
    /// end, and more would not help).
    fn walk(
        &self,
        regs: Registers,
        cache: &mut CacheX86_64<MustNotAllocateDuringUnwind>,
        words: &[u64],
        full_copy: bool,
        out: &mut [u64],
    ) -> (usize, bool) {
        let base = regs.sp;
        let mut ran_off = false;
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            if addr < base || addr % 8 != 0 {
                return Err(());
            }
            let index = ((addr - base) / 8) as usize;
            match words.get(index) {
                Some(&word) => Ok(word),
                None => {
                    ran_off = full_copy;
                    Err(())
                }
            }
        };
        let mut depth = 0;
        {
            let mut frames = self.unwinder.iter_frames(
                regs.ip,
                UnwindRegsX86_64::new(regs.ip, regs.sp, regs.bp),
                cache,
                &mut read_stack,
            );
            while depth < out.len() {
                match frames.next() {
                    Ok(Some(FrameAddress::InstructionPointer(ip))) => {
                        // Stored as if it were a return address, so that
                        // every frame is symbolized the same way (address - 1).
                        out[depth] = ip + 1;
                    }
                    Ok(Some(FrameAddress::ReturnAddress(ra))) => out[depth] = ra.get(),
                    Ok(None) | Err(_) => break,
                }
                depth += 1;
            }
        }
        (depth, ran_off)
    }
    // end of safe zone
}

// safe zone: no lock, no allocation (runtime/tests/layers.rs)
/// Copies the stack from `sp` up into `buffer`, page by page (the page
/// list goes in `remote`), stopping at the first unreadable page.
/// Async-signal-safe (one syscall).
fn copy_stack(sp: u64, buffer: &mut [u64], remote: &mut [libc::iovec]) -> usize {
    let len = buffer.len() * 8;
    debug_assert!(len <= STACK_COPY);
    let mut count = 0;
    let mut at = sp as usize;
    let end = at + len;
    while at < end && count < remote.len() {
        let next = ((at / PAGE) + 1) * PAGE;
        let piece_end = next.min(end);
        remote[count] = libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: piece_end - at,
        };
        count += 1;
        at = piece_end;
    }
    let local = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: len,
    };
    // SAFETY: `local` describes our own writable buffer of `len` bytes;
    // `remote` describes addresses in this process that the kernel reads
    // with fault handling (a bad page ends the copy, it cannot crash us).
    // getpid and process_vm_readv are plain syscalls.
    let read = unsafe {
        libc::process_vm_readv(
            libc::getpid(),
            &local,
            1,
            remote.as_ptr(),
            count as libc::c_ulong,
            0,
        )
    };
    if read < 0 {
        0
    } else {
        read as usize
    }
}
// end of safe zone

/// Decodes `eh_frame_ptr` of an `.eh_frame_hdr` (the encodings linkers
/// emit: pcrel or absolute, 4 or 8 bytes).
fn eh_frame_address(hdr: &[u8], hdr_vaddr: u64) -> Option<u64> {
    if hdr.len() < 8 || hdr[0] != 1 {
        return None;
    }
    let encoding = hdr[1];
    let field = 4u64;
    let (value, size): (i64, usize) = match encoding & 0x0f {
        0x03 => (u32::from_le_bytes(hdr[4..8].try_into().ok()?) as i64, 4),
        0x0b => (i32::from_le_bytes(hdr[4..8].try_into().ok()?) as i64, 4),
        0x04 | 0x0c if hdr.len() >= 12 => (i64::from_le_bytes(hdr[4..12].try_into().ok()?), 8),
        _ => return None,
    };
    let _ = size;
    match encoding & 0x70 {
        0x00 => Some(value as u64),
        0x10 => Some((hdr_vaddr + field).wrapping_add(value as u64)),
        0x30 => Some(hdr_vaddr.wrapping_add(value as u64)),
        _ => None,
    }
}

type ModuleEntry = (String, bool, u64, Vec<Segment>, Range<u64>);

/// A loaded object as the symbolizer needs it.
pub(crate) struct LoadedObject {
    /// Its file (the executable's own path for the main program).
    pub(crate) path: String,
    /// Load bias: a symbol's address plus this is where it is.
    pub(crate) base: u64,
    /// Where its code is loaded.
    pub(crate) text: Range<u64>,
}

/// The objects loaded now, with their code's addresses.
pub(crate) fn loaded_objects() -> Vec<LoadedObject> {
    let mut objects = Vec::new();
    for_each_module(|path, _, base, segments, _| {
        let code = segments.iter().filter(|s| s.executable);
        let start = code.clone().map(|s| s.vaddr.start).min();
        let end = code.map(|s| s.vaddr.end).max();
        if let (Some(start), Some(end)) = (start, end) {
            objects.push(LoadedObject {
                path,
                base,
                text: base + start..base + end,
            });
        }
    });
    objects
}

/// Whether the object at `path` is loaded with load bias `base` now.
fn is_loaded_at(path: &str, base: u64) -> bool {
    let mut found = false;
    for_each_module(|name, _, b, _, _| found |= name == path && b == base);
    found
}

/// Calls `f(name, is a shared object, load bias, loadable segments,
/// eh_frame_hdr range)` for each loaded object that has unwind tables
/// (addresses relative to the bias). The main executable and the vDSO are
/// not shared objects that can be unloaded.
fn for_each_module(mut f: impl FnMut(String, bool, u64, Vec<Segment>, Range<u64>)) {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info struct for the call's
        // duration, and `data` is the `&mut Vec` we passed in.
        let (info, modules) = unsafe { (&*info, &mut *(data as *mut Vec<ModuleEntry>)) };
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated path owned by the loader.
            unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let mut segments = Vec::new();
        let mut hdr = None;
        for h in headers {
            match h.p_type {
                libc::PT_LOAD => segments.push(Segment {
                    vaddr: h.p_vaddr..h.p_vaddr + h.p_memsz,
                    executable: h.p_flags & libc::PF_X != 0,
                }),
                libc::PT_GNU_EH_FRAME => hdr = Some(h.p_vaddr..h.p_vaddr + h.p_memsz),
                _ => {}
            }
        }
        if let Some(hdr) = hdr {
            let shared_object = !name.is_empty() && !name.starts_with("linux-vdso");
            let name = if name.is_empty() {
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            } else {
                name
            };
            modules.push((name, shared_object, info.dlpi_addr, segments, hdr));
        }
        0
    }
    let mut modules: Vec<ModuleEntry> = Vec::new();
    // SAFETY: `visit` matches the callback type and only uses `data` as the
    // Vec it is.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut modules as *mut Vec<_>).cast()) };
    for (name, shared_object, base, segments, hdr) in modules {
        f(name, shared_object, base, segments, hdr);
    }
}
