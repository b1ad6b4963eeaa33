//! GPU time of one compute pass from timestamps written at its start and end (wall time where
//! the adapter has no TIMESTAMP_QUERY), for the probes and micro-benchmarks in
//! `engine/examples/`.

use std::time::Instant;

use crate::error::Result;
use crate::gpu::Gpu;

pub struct PassTimer {
    /// Query set and resolve buffer; None where the adapter has no TIMESTAMP_QUERY.
    queries: Option<(wgpu::QuerySet, wgpu::Buffer)>,
}

/// What a pass records.
pub type Record<'a> = &'a dyn Fn(&mut wgpu::ComputePass<'_>);

impl PassTimer {
    pub fn new(gpu: &Gpu) -> PassTimer {
        let queries = gpu.caps.timestamps.then(|| {
            (
                gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("pass_timer"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                }),
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("pass_timer.resolve"),
                    size: 16,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
            )
        });
        PassTimer { queries }
    }

    /// Records `record` into one pass (timed or not), submits it and waits; with `timed`, the
    /// pass's GPU seconds (the wall seconds of recording, submit and wait where the adapter
    /// has no timestamps).
    pub fn run(&self, gpu: &Gpu, timed: bool, record: Record<'_>) -> Result<f64> {
        self.run_passes(gpu, None, timed, record)
    }

    /// `run`, timed, after an untimed pass of `before` in the same submission (the GPU is
    /// already busy when the timed pass starts).
    pub fn run_after(&self, gpu: &Gpu, before: Record<'_>, record: Record<'_>) -> Result<f64> {
        self.run_passes(gpu, Some(before), true, record)
    }

    fn run_passes(
        &self,
        gpu: &Gpu,
        before: Option<Record<'_>>,
        timed: bool,
        record: Record<'_>,
    ) -> Result<f64> {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        if let Some(before) = before {
            before(&mut enc.begin_compute_pass(&Default::default()));
        }
        let queries = self.queries.as_ref().filter(|_| timed);
        let start = Instant::now();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: queries.map(|(set, _)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            record(&mut pass);
        }
        if let Some((set, resolve)) = queries {
            enc.resolve_query_set(set, 0..2, resolve, 0);
        }
        gpu.queue.submit([enc.finish()]);
        gpu.wait()?;
        let wall = start.elapsed().as_secs_f64();
        match queries {
            _ if !timed => Ok(0.0),
            None => Ok(wall),
            Some((_, resolve)) => {
                let t: Vec<u64> = bytemuck::pod_collect_to_vec(&gpu.read_bytes(resolve, 16)?);
                Ok(t[1].wrapping_sub(t[0]) as f64 * gpu.queue.get_timestamp_period() as f64 * 1e-9)
            }
        }
    }

    /// The best of `reps` timed passes after `warm_ms` of untimed ones (the H100 idles at a low
    /// clock and needs continuous work to leave it).
    pub fn best(&self, gpu: &Gpu, warm_ms: u128, reps: usize, record: Record<'_>) -> Result<f64> {
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
