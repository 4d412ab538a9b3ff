"""What every bench prints beside its figures: the CPU it ran on, and percentiles taken the same way."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU's model name (these machines differ: some have AVX-512, some only AVX2)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank: always one of the measured values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
