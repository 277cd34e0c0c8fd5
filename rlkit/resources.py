"""Resource figures of the training process, logged with the step's metrics.

``sys/rss_gb`` (resident memory of this process), ``sys/cpu_percent`` (its CPU use since the
previous reading; 100 = one core busy), and on a CUDA device ``sys/gpu_mem_gb`` (peak memory
allocated by torch since the previous reading) and ``sys/gpu_util`` (the device's
utilisation in percent, when NVML is available).
"""

from __future__ import annotations


class ResourceMonitor:
    """Reads this process's resource use; each ``read`` covers the time since the last one."""

    def __init__(self, device=None) -> None:
        import psutil

        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading starts the interval
        self._device = device if device is not None and getattr(device, "type", None) == "cuda" else None

    def read(self) -> dict[str, float]:
        memory = self._process.memory_info()
        metrics = {"sys/rss_gb": memory.rss / 2**30, "sys/cpu_percent": self._process.cpu_percent(None)}
        if self._device is not None:
            import torch

            metrics["sys/gpu_mem_gb"] = torch.cuda.max_memory_allocated(self._device) / 2**30
            torch.cuda.reset_peak_memory_stats(self._device)
            try:
                metrics["sys/gpu_util"] = float(torch.cuda.utilization(self._device))
            except Exception:  # NVML (nvidia-ml-py) missing or not supported: no utilisation figure
                pass
        return metrics
