"""figures/kernel_error.{png,pdf,csv}: log-uniform error δ vs degree p of each kernel vs the best approximations."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("kernel_error")
