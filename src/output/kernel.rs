//! The kernel output, `NAME.vmlinuz`: the kernel image of the recipe's kernel package, as the
//! package ships it.

use super::{Job, OutputKind, Sink, Writer, Written};
use crate::base::error::{Error, IoContext, Result};
use crate::plan::Plan;

/// `NAME.vmlinuz`.
pub struct Vmlinuz;

impl Writer for Vmlinuz {
    fn kind(&self) -> OutputKind {
        OutputKind::Kernel
    }

    fn wanted(&self, plan: &Plan) -> bool {
        plan.kernel.is_some()
    }

    fn file(&self, plan: &Plan) -> String {
        format!("{}.vmlinuz", plan.name)
    }

    fn write(&self, job: &Job<'_>, mut out: Sink) -> Result<Written> {
        let kernel = job.plan.kernel.as_ref().ok_or_else(|| Error::failure("the plan has no kernel"))?;
        let mut data = kernel.vmlinuz.open(job.spool)?;
        std::io::copy(&mut data, &mut out).writing(job.path)?;
        Ok(out.into())
    }
}
