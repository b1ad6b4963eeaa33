use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy)]
pub struct Step {
    pub pos: u32,
    pub n_tokens: u32,
    pub rand: u32,
    pub _pad: u32,
}
