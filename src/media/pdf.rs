//! PDF documents: their pages counted, in a child process with capped memory and CPU time.
//!
//! lopdf decompresses object streams and cross-reference streams while it loads a file, with
//! no limit: a few kilobytes can unpack to tens of gigabytes. Running out of memory ends a
//! process outright (no panic to catch), and a bundle stays in the queue folder until it is
//! stored, so one such PDF would end the daemon at every start. So the parse runs in a child,
//! this same binary (`lipost inspect-pdf`, hidden), whose address space and CPU time are
//! capped: its death refuses the file, never the daemon.
//!
//! Must not touch the store, the queue folder or the network.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{NotTaken, MAX_PDF_PAGES};

/// The child's address space: ample for a 100 MB PDF (mapped, plus lopdf's objects).
pub const MEMORY_BYTES: u64 = 1 << 30;
/// The child's CPU time, and (doubled) the wall time it is given.
pub const CPU_SECONDS: u64 = 30;

/// What LinkedIn would make of the PDF: its page count, why it is refused, or that the
/// check could not run this time.
pub fn check(file: &File) -> Result<String, NotTaken> {
    // The unit tests' binary is not lipost: they read in-process. Every test through the
    // binary, and the daemon, goes through the child.
    if cfg!(test) {
        return pages(file).map_err(NotTaken::Refused);
    }
    isolated(file)
}

fn isolated(file: &File) -> Result<String, NotTaken> {
    let input = file
        .try_clone()
        .map_err(|e| NotTaken::Again(format!("cannot read it: {e}")))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("inspect-pdf")
        .env_clear()
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only prctl, open, write, close and setrlimit run: raw
    // system calls, async-signal-safe, touching no memory but their (static) arguments.
    unsafe {
        cmd.pre_exec(|| {
            // Ends with the daemon (SIGKILLed mid-check, say), and is the one the kernel's
            // OOM killer takes first. Best effort both: a refusal must not refuse the PDF.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, b"1000".as_ptr().cast(), 4);
                libc::close(fd);
            }
            cap(libc::RLIMIT_AS, MEMORY_BYTES)?;
            cap(libc::RLIMIT_CPU, CPU_SECONDS)?;
            cap(libc::RLIMIT_CORE, 0)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| NotTaken::Again(format!("cannot start the PDF check: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(2 * CPU_SECONDS);
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NotTaken::Refused(beyond_limits()));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NotTaken::Again(format!("the PDF check was lost: {e}")));
            }
        }
    };
    let mut answer = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut answer);
    }
    verdict(status, &answer)
}

/// What the child's end says: its answer, its limits reached (the file's fault), or an end
/// that is not the file's fault (try again).
fn verdict(status: std::process::ExitStatus, answer: &str) -> Result<String, NotTaken> {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.success(), answer.trim_end().split_once('\t')) {
        (true, Some(("ok", found))) => Ok(found.to_string()),
        (true, Some(("refused", why))) => Err(NotTaken::Refused(why.to_string())),
        // Its limits: out of memory (an allocation failure aborts), out of CPU time
        // (SIGXCPU, then SIGKILL), or taken by the kernel's OOM killer (SIGKILL).
        _ if matches!(
            status.signal(),
            Some(libc::SIGABRT | libc::SIGKILL | libc::SIGXCPU | libc::SIGSEGV | libc::SIGBUS)
        ) =>
        {
            Err(NotTaken::Refused(beyond_limits()))
        }
        // Stopped with the daemon (`systemctl stop`), or an answer lost: not the file's
        // fault. The draft stays and is checked again.
        _ if matches!(
            status.signal(),
            Some(libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGQUIT)
        ) || status.success() =>
        {
            Err(NotTaken::Again(format!("the PDF check ended early ({status})")))
        }
        // Any other end (a parser that panicked, exit 101; a signal of its own making): the
        // file is refused with the reason rather than checked again and again.
        _ => Err(NotTaken::Refused(format!(
            "a PDF that lipost's PDF check could not read (it ended: {status}): is it damaged? Save it again as PDF"
        ))),
    }
}

fn beyond_limits() -> String {
    format!(
        "a PDF that cannot be read within lipost's limits ({} MiB of memory, {CPU_SECONDS} s): it is damaged, or built to unpack to far more than its size (or the machine ran short of memory: then drop it again); save it again as PDF",
        MEMORY_BYTES >> 20
    )
}

fn cap(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: a plain syscall on a value we own.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The child's side (`lipost inspect-pdf`): reads the PDF on standard input and prints
/// `ok\tWHAT` or `refused\tWHY`. Its exit code for `main`.
pub fn inspect_stdin() -> u8 {
    use std::os::fd::AsFd as _;
    let file = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(_) => return 2,
    };
    // A parser that panics on a hostile file refuses it, with the reason.
    let read = std::panic::catch_unwind(|| pages(&file)).unwrap_or_else(|_| {
        Err("a PDF, but its parser failed on it: is it damaged? Save it again as PDF".into())
    });
    let line = match read {
        Ok(found) => format!("ok\t{found}"),
        Err(why) => format!("refused\t{}", why.replace(['\n', '\t'], " ")),
    };
    println!("{line}");
    0
}

fn pages(file: &File) -> Result<String, String> {
    // Mapped, not read: the file is the store's private copy (or, for `lipost validate`, the
    // author's), which nobody truncates while it is read.
    // SAFETY: read-only map of a regular file; see above for truncation.
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| format!("cannot read it: {e}"))?;
    // The whole document, through lopdf's parser (which bounds nesting), but the page tree is
    // walked here: lopdf's own page count trusts `/Count` and recurses once per tree level, so
    // a small hostile file could claim any count or overflow the stack.
    let doc = lopdf::Document::load_mem(&map)
        .map_err(|e| format!("a PDF, but it cannot be read ({e}): is it damaged or encrypted?"))?;
    match count_pdf_pages(&doc) {
        Err(why) => Err(format!("a PDF, but {why}: is it damaged? Save it again as PDF")),
        Ok(0) => Err(
            "a PDF, but its pages cannot be counted: is it damaged? Save it again as PDF".into(),
        ),
        Ok(n) if n > MAX_PDF_PAGES => Err(format!(
            "a PDF of more than {MAX_PDF_PAGES} pages; LinkedIn takes at most {MAX_PDF_PAGES}: split it"
        )),
        Ok(n) => Ok(format!("a PDF document, {n} pages")),
    }
}

/// Leaves of the page tree, counted without recursion; stops as soon as there are more than
/// [`MAX_PDF_PAGES`], so the answer is exact up to that and "more" beyond.
fn count_pdf_pages(doc: &lopdf::Document) -> Result<u32, String> {
    use lopdf::Object;
    // A tree with at most MAX_PDF_PAGES leaves has no business being deeper or wider than this.
    const MAX_NODES: usize = 20 * MAX_PDF_PAGES as usize;
    let root = doc
        .catalog()
        .and_then(|c| c.get(b"Pages"))
        .and_then(Object::as_reference)
        .map_err(|_| "it names no page tree".to_string())?;
    let mut todo = vec![root];
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0u32;
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            return Err("its page tree loops".into());
        }
        if seen.len() > MAX_NODES {
            return Err("its page tree is absurdly large".into());
        }
        let Ok(node) = doc.get_dictionary(id) else {
            continue;
        };
        match node.get_type() {
            Ok(t) if t == b"Pages" => {
                if let Ok(kids) = node.get(b"Kids").and_then(Object::as_array) {
                    // Reversed, so pages are met in order (not that the count cares).
                    todo.extend(kids.iter().rev().filter_map(|k| k.as_reference().ok()));
                }
            }
            _ => {
                pages += 1;
                if pages > MAX_PDF_PAGES {
                    return Ok(pages);
                }
            }
        }
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt as _;

    #[test]
    fn the_childs_end_tells_the_files_fault_from_a_stop() {
        let exited = |code: i32| std::process::ExitStatus::from_raw(code << 8);
        let signalled = |sig: i32| std::process::ExitStatus::from_raw(sig);
        assert_eq!(
            verdict(exited(0), "ok\ta PDF document, 2 pages\n"),
            Ok("a PDF document, 2 pages".into())
        );
        assert_eq!(
            verdict(exited(0), "refused\tits page tree loops\n"),
            Err(NotTaken::Refused("its page tree loops".into()))
        );
        for sig in [libc::SIGABRT, libc::SIGKILL, libc::SIGXCPU] {
            assert!(
                matches!(verdict(signalled(sig), ""), Err(NotTaken::Refused(w)) if w.contains("within lipost's limits")),
                "signal {sig}"
            );
        }
        // `systemctl stop` ends the child with the daemon: not the file's fault.
        assert!(matches!(
            verdict(signalled(libc::SIGTERM), ""),
            Err(NotTaken::Again(_))
        ));
        // A panic (exit 101) or any other end: refused with the reason, never looped on.
        assert!(
            matches!(verdict(exited(101), ""), Err(NotTaken::Refused(w)) if w.contains("could not read"))
        );
        assert!(matches!(verdict(exited(2), ""), Err(NotTaken::Refused(_))));
        assert!(matches!(
            verdict(exited(0), "garbage"),
            Err(NotTaken::Again(_))
        ));
    }
}
