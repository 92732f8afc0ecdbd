"""figures/variance_shrinkage.{png,pdf,csv}: output error vs attention-weighted ‖x+y‖² for FAVOR+, FAVOR++,
uniform attention and the shrinkage estimator at equal feature count."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("variance_shrinkage")
