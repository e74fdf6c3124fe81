//! The unified kernel image, `NAME.efi`, of a disk that boots by itself (`[disk] boot =
//! "uefi"`): systemd's EFI stub with the stage-1's kernel, its initramfs, the command line that
//! finds the root, the root's `os-release` and the kernel's version as PE sections, laid out as
//! the UAPI Group's UKI specification says (`format::pe`). Firmware runs the stub, the stub runs
//! the kernel with the initramfs and the command line: the disk needs nothing from outside.
//! The disk holds the same bytes in its EFI system partition.

use std::io::{BufReader, Read, Seek, SeekFrom};

use super::{Job, OutputKind, Sink, Writer, Written, disk, initramfs};
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{HashingWriter, hex};
use crate::format::{gpt, pe};
use crate::plan::Plan;
use crate::source::Node;

/// `NAME.efi`.
pub struct Uki;

impl Writer for Uki {
    fn kind(&self) -> OutputKind {
        OutputKind::Uki
    }

    fn wanted(&self, plan: &Plan) -> bool {
        plan.boot.is_some()
    }

    fn file(&self, plan: &Plan) -> String {
        format!("{}.efi", plan.name)
    }

    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written> {
        let boot = job.plan.boot.as_ref().ok_or_else(|| Error::failure("the plan has no `boot`"))?;
        let stage1 = job
            .stage1
            .ok_or_else(|| Error::failure("the unified kernel image needs its stage-1, which was not planned"))?;
        let kernel = stage1.kernel.as_ref().ok_or_else(|| Error::failure("the stage-1 has no kernel"))?;
        // The kernel must be one the stub can start: an EFI-stub bzImage.
        let mut head = Vec::with_capacity(4096);
        kernel.vmlinuz.open(job.spool)?.take(4096).read_to_end(&mut head).writing(job.path)?;
        pe::check_bzimage(&head).map_err(|e| e.context(format!("the kernel of `{}`", boot.written)))?;
        let initrd = stage1_initramfs(job, stage1)?;
        let cmdline = cmdline(job, stage1)?;
        let osrel = os_release(job)?;
        let mut osrel_reader = &osrel[..];
        let mut cmdline_reader = cmdline.as_bytes();
        let mut uname_reader = kernel.version.as_bytes();
        let (mut initrd_file, initrd_size) = initrd;
        let mut initrd_reader = BufReader::with_capacity(1 << 20, &mut initrd_file);
        let mut linux_reader = BufReader::with_capacity(1 << 20, kernel.vmlinuz.open(job.spool)?);
        // In the order of `pe::UKI_SECTIONS`, the kernel last as ukify places it.
        let mut sections = [
            pe::Section { name: ".osrel", size: osrel.len() as u64, contents: &mut osrel_reader },
            pe::Section { name: ".cmdline", size: cmdline.len() as u64, contents: &mut cmdline_reader },
            pe::Section { name: ".uname", size: kernel.version.len() as u64, contents: &mut uname_reader },
            pe::Section { name: ".initrd", size: initrd_size, contents: &mut initrd_reader },
            pe::Section { name: ".linux", size: kernel.vmlinuz.size, contents: &mut linux_reader },
        ];
        let sink = pe::write(&boot.stub, &mut sections, out)
            .map_err(|e| e.context(format!("the EFI stub of `{}`", job.plan.name)))?;
        Ok(sink.into())
    }
}

/// The stage-1's initramfs, written into a scratch file as its own build would write it;
/// returns the file (at its start) and its size.
fn stage1_initramfs(job: &Job<'_>, stage1: &Plan) -> Result<(std::fs::File, u64)> {
    let dir = job.path.parent().unwrap_or(job.path);
    let scratch = tempfile::tempfile_in(dir).writing(job.path)?;
    let stage1_job = Job {
        plan: stage1,
        stage1: None,
        spool: job.spool,
        threads: job.threads,
        store: job.store,
        reporter: job.reporter,
        earlier: &[],
        path: job.path,
    };
    let written = initramfs::Initramfs.write(&stage1_job, HashingWriter::new(scratch))?;
    let (mut file, _, size) = written.sink.finish().writing(job.path)?;
    file.seek(SeekFrom::Start(0)).writing(job.path)?;
    Ok((file, size))
}

/// `.cmdline`: the stage-1's `[kernel] cmdline`, then what finds the root: `root=PARTUUID=` the
/// root partition's GUID (lower case), and for a verity disk `roothash=`. Nothing is added at
/// boot any more, so a serial console is the stage-1's to ask for (`console=ttyS0`).
fn cmdline(job: &Job<'_>, stage1: &Plan) -> Result<String> {
    let mut line = stage1.kernel.as_ref().and_then(|k| k.cmdline.clone()).unwrap_or_default().trim().to_string();
    let root = gpt::format_guid(&disk::root_guid(job)?);
    let mut push = |arg: String| {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&arg);
    };
    push(format!("root=PARTUUID={root}"));
    if let Some(hash) = job.earlier(OutputKind::Verity).and_then(|v| v.output().root_hash) {
        push(format!("roothash={}", hex(&hash)));
    }
    Ok(line)
}

/// `.osrel`: the root's own `os-release` (`/etc/os-release`, else `/usr/lib/os-release`, as
/// os-release(5) says), else one made from `[image]`.
fn os_release(job: &Job<'_>) -> Result<Vec<u8>> {
    for path in ["etc/os-release", "usr/lib/os-release"] {
        let found = job.plan.entries.iter().find(|e| e.path.as_bytes() == path.as_bytes());
        if let Some(Node::File { content }) = found.map(|e| &e.node) {
            let mut bytes = Vec::new();
            content.open(job.spool)?.read_to_end(&mut bytes).writing(job.path)?;
            return Ok(bytes);
        }
    }
    let name = &job.plan.name;
    let id: String =
        name.to_ascii_lowercase().chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
    Ok(format!("NAME=\"{name}\"\nID={id}\nPRETTY_NAME=\"{name}\"\nIMAGE_ID={id}\n").into_bytes())
}
