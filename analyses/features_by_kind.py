"""figures/features_by_kind.{png,pdf,csv}: features each random-feature kind needs for row TV ≤ ε, synthetic and real heads."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("features_by_kind")
