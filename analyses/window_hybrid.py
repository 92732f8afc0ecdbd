"""figures/window_hybrid.{png,pdf,csv}: row TV and output error vs window size for window + kernel hybrids, with
the hybrid bound T(B, ℓ, h), on the MiniLM heads and Gaussian inputs at several temperatures."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("window_hybrid")
