"""figures/bridge.{png,pdf,csv}: measured row TV vs the bound tanh(δ/2), and minimax vs taylor on [−R, R]."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("bridge")
