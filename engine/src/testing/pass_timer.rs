//! GPU time of one compute pass from timestamps written at its start and end, for the probes
//! and micro-benchmarks in `engine/examples/` (adapters with TIMESTAMP_QUERY).

use std::time::Instant;

use crate::error::Result;
use crate::gpu::Gpu;

pub struct PassTimer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
}

impl PassTimer {
    pub fn new(gpu: &Gpu) -> PassTimer {
        PassTimer {
            set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass_timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pass_timer.resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
        }
    }

    /// Records `record` into one pass (timed or not), submits it and waits; with `timed`, the
    /// pass's GPU seconds.
    pub fn run(
        &self,
        gpu: &Gpu,
        timed: bool,
        record: &dyn Fn(&mut wgpu::ComputePass<'_>),
    ) -> Result<f64> {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: timed.then_some(wgpu::ComputePassTimestampWrites {
                    query_set: &self.set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            record(&mut pass);
        }
        if timed {
            enc.resolve_query_set(&self.set, 0..2, &self.resolve, 0);
        }
        gpu.queue.submit([enc.finish()]);
        gpu.wait()?;
        if !timed {
            return Ok(0.0);
        }
        let t: Vec<u64> = bytemuck::pod_collect_to_vec(&gpu.read_bytes(&self.resolve, 16)?);
        Ok(t[1].wrapping_sub(t[0]) as f64 * gpu.queue.get_timestamp_period() as f64 * 1e-9)
    }

    /// The best of `reps` timed passes after `warm_ms` of untimed ones (the H100 idles at a low
    /// clock and needs continuous work to leave it).
    pub fn best(
        &self,
        gpu: &Gpu,
        warm_ms: u128,
        reps: usize,
        record: &dyn Fn(&mut wgpu::ComputePass<'_>),
    ) -> Result<f64> {
        let warm = Instant::now();
        while warm.elapsed().as_millis() < warm_ms {
            self.run(gpu, false, record)?;
        }
        let mut best = f64::MAX;
        for _ in 0..reps {
            best = best.min(self.run(gpu, true, record)?);
        }
        Ok(best)
    }
}
