//! GPU memory, from NVML. The library is loaded at run time, so the daemon runs the same on
//! machines without NVIDIA drivers: there the answer is "no GPU".

/// One GPU's memory, as NVML reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMemory {
    pub index: u32,
    pub name: String,
    pub used: u64,
    pub free: u64,
    pub total: u64,
}

/// Where GPU memory figures come from (a fake stands in for it in tests).
pub trait GpuInfo: Send + Sync {
    /// Every GPU's memory; empty when there is no GPU.
    fn devices(&self) -> Result<Vec<DeviceMemory>, String>;

    /// The most free memory on any one GPU, in bytes; `Ok(None)` when there is no GPU.
    fn free_memory(&self) -> Result<Option<u64>, String> {
        Ok(self.devices()?.iter().map(|d| d.free).max())
    }
}

/// NVML, loaded once on first use; absent (no driver) means no GPU.
#[derive(Default)]
pub struct Nvml {
    lib: std::sync::OnceLock<Option<nvml_wrapper::Nvml>>,
}

impl GpuInfo for Nvml {
    fn devices(&self) -> Result<Vec<DeviceMemory>, String> {
        let Some(nvml) = self.lib.get_or_init(|| nvml_wrapper::Nvml::init().ok()) else {
            return Ok(Vec::new());
        };
        let count = nvml.device_count().map_err(|e| format!("NVML: {e}"))?;
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            let fail = |e| format!("NVML device {index}: {e}");
            let device = nvml.device_by_index(index).map_err(fail)?;
            let memory = device.memory_info().map_err(fail)?;
            out.push(DeviceMemory {
                index,
                // A name is only a label; a device that will not say one still counts.
                name: device.name().unwrap_or_default(),
                used: memory.used,
                free: memory.free,
                total: memory.total,
            });
        }
        Ok(out)
    }
}

/// Whether work needing `min_free` bytes of GPU memory may start now: `Err` says why not.
pub fn check(gpu: &dyn GpuInfo, min_free: Option<u64>) -> Result<(), String> {
    let Some(min) = min_free else { return Ok(()) };
    match gpu.free_memory()? {
        // Said once at start-up: "no NVIDIA GPU found".
        None => Ok(()),
        Some(free) if free >= min => Ok(()),
        Some(free) => Err(format!(
            "{} MiB of GPU memory free on the freest GPU, {} MiB needed",
            free >> 20,
            min >> 20
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<u64>);
    impl GpuInfo for Fake {
        fn devices(&self) -> Result<Vec<DeviceMemory>, String> {
            Ok(self
                .0
                .iter()
                .enumerate()
                .map(|(i, &free)| DeviceMemory {
                    index: i as u32,
                    name: "fake".into(),
                    used: (16 << 30) - free,
                    free,
                    total: 16 << 30,
                })
                .collect())
        }
    }

    #[test]
    fn the_check_compares_the_freest_device_and_skips_without_a_gpu() {
        assert!(check(&Fake(vec![8 << 30]), Some(6 << 30)).is_ok());
        assert!(check(&Fake(vec![1 << 30, 7 << 30]), Some(6 << 30)).is_ok());
        let no = check(&Fake(vec![2 << 30, 1 << 30]), Some(6 << 30)).unwrap_err();
        assert!(no.contains("2048 MiB") && no.contains("6144 MiB"), "{no}");
        assert!(check(&Fake(vec![]), Some(6 << 30)).is_ok());
        assert!(check(&Fake(vec![0]), None).is_ok());
        // This machine: NVML is absent or reports real GPUs; either way no panic.
        assert!(Nvml::default().devices().is_ok());
    }
}
