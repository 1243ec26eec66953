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

/// The GPUs this process may use, in CUDA's order: NVML numbers every GPU by PCI bus, and
/// `CUDA_VISIBLE_DEVICES` (`cuda_visible`; numbers in that order, as the daemon's unit sets
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID`) narrows and orders them. A list this cannot read (GPU
/// UUIDs) leaves every GPU.
pub fn visible(devices: Vec<DeviceMemory>, cuda_visible: Option<&str>) -> Vec<DeviceMemory> {
    let Some(list) = cuda_visible.map(str::trim) else {
        return devices;
    };
    let mut indexes = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.parse::<i64>() {
            Ok(i) if i >= 0 => indexes.push(i),
            // As CUDA reads it: an invalid number (`-1` hides every GPU) ends the list.
            Ok(_) => break,
            // GPU-/MIG- UUIDs: not mapped to NVML's numbers here; every GPU counts.
            Err(_) if entry.starts_with("GPU-") || entry.starts_with("MIG-") => return devices,
            Err(_) => break,
        }
    }
    indexes
        .into_iter()
        .filter_map(|i| devices.iter().find(|d| i64::from(d.index) == i).cloned())
        .collect()
}

/// The GPU a training run gets: the visible one with the most free memory, if it has
/// `min_free` (`Err` says why not). `freed`: memory the run frees before it starts, on that
/// GPU (an exclusive run unloads the serving model). `Ok(None)`: no GPU.
pub fn choose(
    gpu: &dyn GpuInfo,
    min_free: Option<u64>,
    cuda_visible: Option<&str>,
    freed: Option<(u32, u64)>,
) -> Result<Option<DeviceMemory>, String> {
    let mut devices = visible(gpu.devices()?, cuda_visible);
    if let Some((index, bytes)) = freed {
        for d in devices.iter_mut().filter(|d| d.index == index) {
            d.free = (d.free + bytes).min(d.total);
        }
    }
    let Some(best) = devices
        .into_iter()
        .max_by_key(|d| (d.free, std::cmp::Reverse(d.index)))
    else {
        return Ok(None);
    };
    match min_free {
        Some(min) if best.free < min => Err(format!(
            "{} MiB of GPU memory free on the freest GPU ({} {}), {} MiB needed",
            best.free >> 20,
            best.index,
            best.name,
            min >> 20
        )),
        _ => Ok(Some(best)),
    }
}

/// Whether transcription, on CUDA device `ordinal` (`[asr] gpu_device`), has `min_free`
/// bytes there: the device it runs on, not the freest one. No GPU: yes.
pub fn check_device(
    gpu: &dyn GpuInfo,
    ordinal: u32,
    min_free: Option<u64>,
    cuda_visible: Option<&str>,
) -> Result<(), String> {
    let Some(min) = min_free else { return Ok(()) };
    let devices = visible(gpu.devices()?, cuda_visible);
    if devices.is_empty() {
        return Ok(());
    }
    let Some(d) = devices.get(ordinal as usize) else {
        return Err(format!(
            "[asr] gpu_device {ordinal} does not exist: {} GPU(s) visible",
            devices.len()
        ));
    };
    if d.free >= min {
        return Ok(());
    }
    Err(format!(
        "{} MiB of GPU memory free on GPU {} ({}), where transcription runs; {} MiB needed",
        d.free >> 20,
        d.index,
        d.name,
        min >> 20
    ))
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
        // A run gets the freest visible GPU; transcription checks its own.
        let two = Fake(vec![1 << 30, 7 << 30]);
        assert_eq!(
            choose(&two, Some(6 << 30), None, None)
                .unwrap()
                .unwrap()
                .index,
            1
        );
        assert!(choose(&two, Some(6 << 30), Some("0"), None).is_err());
        // An exclusive run frees the serving model's memory on GPU 0 first.
        let freed = Some((0, 5 << 30));
        assert_eq!(
            choose(&two, Some(6 << 30), Some("0"), freed)
                .unwrap()
                .unwrap()
                .free,
            6 << 30
        );
        assert_eq!(
            choose(&two, None, Some("0"), None).unwrap().unwrap().index,
            0
        );
        assert_eq!(choose(&Fake(vec![]), Some(1), None, None).unwrap(), None);
        assert!(check_device(&two, 0, Some(6 << 30), None).is_err());
        assert!(check_device(&two, 1, Some(6 << 30), None).is_ok());
        // With CUDA_VISIBLE_DEVICES=1, CUDA's device 0 is GPU 1.
        assert!(check_device(&two, 0, Some(6 << 30), Some("1")).is_ok());
        assert!(check_device(&two, 2, Some(1), None)
            .unwrap_err()
            .contains("does not exist"));
        assert_eq!(visible(two.devices().unwrap(), Some("GPU-abc")).len(), 2);
        assert!(visible(two.devices().unwrap(), Some("-1")).is_empty());
        assert_eq!(visible(two.devices().unwrap(), Some("1,-1,0")).len(), 1);
        assert_eq!(choose(&two, None, Some("-1"), None).unwrap(), None);
        // This machine: NVML is absent or reports real GPUs; either way no panic.
        assert!(Nvml::default().devices().is_ok());
    }
}
