"""Re-export of the VictoriaMetrics runner shared with the benchmarks."""

from bench.victoria import Victoria, victoria_binary

__all__ = ["Victoria", "victoria_binary"]
