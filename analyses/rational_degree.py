"""figures/rational_degree.{png,pdf,csv}: each variant's kernel, rational degree (sympy) and f(s) vs exp(s)."""

from approxlab.experiments.figures import script_main

if __name__ == "__main__":
    script_main("rational_degree")
