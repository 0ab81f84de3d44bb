//! PLACEHOLDER while the CPU backend is written (branch main).
use crate::*;
pub struct GpuBackend;
impl GpuBackend {
    pub fn new(_software: bool) -> Result<Self> {
        todo!()
    }
}
impl Backend for GpuBackend {
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
pub fn has_hardware_adapter() -> bool {
    todo!()
}
