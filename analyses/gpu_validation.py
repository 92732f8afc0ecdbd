"""figures/gpu_validation.{png,pdf,csv}: numerical error of every efficient form vs a float64 reference.

    PYTHONPATH=$PWD python analyses/gpu_validation.py --device cuda --profile full
"""

from approxlab.experiments.studies.gpu_validation import main

if __name__ == "__main__":
    main()
