"""figures/features_vs_entropy.{png,pdf,csv}: Performer features needed vs attention entropy, N and norms."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("features_vs_entropy")
