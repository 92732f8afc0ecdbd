"""figures/gpu_validation.{png,pdf,csv}: numerical error of every efficient form vs a float64 reference.

    PYTHONPATH=$PWD python analyses/gpu_validation.py --device cuda --profile full

Exits 1 on non-finite values or bridge violations (after writing the figure and CSV).
"""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("gpu_validation")
