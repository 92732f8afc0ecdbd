"""figures/speed_vs_length.{png,pdf,csv}: forward time and memory of every variant vs SDPA as N grows."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("speed_vs_length")
