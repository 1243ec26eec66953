//! Free GPU memory, from NVML. The library is loaded at run time, so the daemon runs the
//! same on machines without NVIDIA drivers: there the answer is "no GPU".

/// Where free GPU memory comes from (a fake stands in for it in tests).
pub trait GpuInfo: Send + Sync {
    /// The most free memory on any one GPU, in bytes; `Ok(None)` when there is no GPU.
    fn free_memory(&self) -> Result<Option<u64>, String>;
}

/// NVML, loaded once on first use; absent (no driver) means no GPU.
#[derive(Default)]
pub struct Nvml {
    lib: std::sync::OnceLock<Option<nvml_wrapper::Nvml>>,
}

impl GpuInfo for Nvml {
    fn free_memory(&self) -> Result<Option<u64>, String> {
        let Some(nvml) = self.lib.get_or_init(|| nvml_wrapper::Nvml::init().ok()) else {
            return Ok(None);
        };
        let count = nvml.device_count().map_err(|e| format!("NVML: {e}"))?;
        let mut best = None;
        for i in 0..count {
            let free = nvml
                .device_by_index(i)
                .and_then(|d| d.memory_info())
                .map_err(|e| format!("NVML device {i}: {e}"))?
                .free;
            best = best.max(Some(free));
        }
        Ok(best)
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
            "{} MiB of GPU memory free, the trainer needs {} MiB",
            free >> 20,
            min >> 20
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Option<u64>);
    impl GpuInfo for Fake {
        fn free_memory(&self) -> Result<Option<u64>, String> {
            Ok(self.0)
        }
    }

    #[test]
    fn the_check_compares_free_memory_and_skips_without_a_gpu() {
        assert!(check(&Fake(Some(8 << 30)), Some(6 << 30)).is_ok());
        let no = check(&Fake(Some(2 << 30)), Some(6 << 30)).unwrap_err();
        assert!(no.contains("2048 MiB") && no.contains("6144 MiB"), "{no}");
        assert!(check(&Fake(None), Some(6 << 30)).is_ok());
        assert!(check(&Fake(Some(0)), None).is_ok());
        // This machine: NVML is absent or reports real GPUs; either way no panic.
        assert!(Nvml::default().free_memory().is_ok());
    }
}
