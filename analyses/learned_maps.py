"""figures/learned_maps.{png,pdf,csv}: Hedgehog and T2R distilled on the real MiniLM heads vs random features."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("learned_maps")
