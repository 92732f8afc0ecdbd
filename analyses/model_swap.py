"""figures/model_swap.{png,pdf,csv}: every variant swapped into all-MiniLM-L6, per layer and end to end."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("model_swap")
