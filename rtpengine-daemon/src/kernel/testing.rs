//! Test hooks (feature `testing`, enabled by the integration tests only).

use anyhow::{anyhow, Context as _};
use aya::programs::Xdp;
use rtpengine_common::XDP_PROGRAM;

use super::Kernel;

impl Kernel {
    /// Runs the program once on `opts` with `BPF_PROG_TEST_RUN` (tests and
    /// diagnostics; `bpf_fib_lookup` then uses the caller's network namespace).
    pub fn test_run(
        &self,
        opts: aya::programs::TestRunOptions<'_>,
    ) -> anyhow::Result<aya::programs::TestRunResult> {
        use aya::programs::TestRun as _;
        let prog = self
            .prog
            .lock()
            .map_err(|_| anyhow!("kernel state poisoned"))?;
        let xdp: &Xdp = prog
            .ebpf
            .program(XDP_PROGRAM)
            .context("XDP program vanished")?
            .try_into()
            .map_err(|e| anyhow!("{e}"))?;
        xdp.test_run(opts)
            .map_err(|e| anyhow!("BPF_PROG_TEST_RUN: {e}"))
    }
}
