"""figures/lesson_exercise.{png,pdf,csv}: speed and divergence of every variant vs softmax."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("lesson_exercise")
