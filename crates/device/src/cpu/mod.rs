//! PLACEHOLDER while the CPU backend is written (branch cpu).
use crate::*;
pub struct CpuBackend;
impl CpuBackend {
    pub fn new() -> Self {
        todo!()
    }
}
impl Backend for CpuBackend {
    fn info(&self) -> &DeviceInfo {
        todo!()
    }
    fn alloc(&mut self, _: DType, _: usize) -> Result<BufferId> {
        todo!()
    }
    fn release(&mut self, _: BufferId) -> Result<()> {
        todo!()
    }
    fn describe(&self, _: BufferId) -> Result<(DType, usize)> {
        todo!()
    }
    fn write(&mut self, _: BufferId, _: HostData<'_>) -> Result<()> {
        todo!()
    }
    fn compile(&mut self, _: &[Launch]) -> Result<PlanId> {
        todo!()
    }
    fn drop_plan(&mut self, _: PlanId) -> Result<()> {
        todo!()
    }
    fn submit(&mut self, _: PlanId, _: &[BufferId]) -> Result<Ticket> {
        todo!()
    }
    fn wait(&mut self, _: Ticket) -> Result<Vec<HostVec>> {
        todo!()
    }
    fn stats(&self) -> Stats {
        todo!()
    }
}
