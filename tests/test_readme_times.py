"""The README's table of study times is the one figures/study_times.csv gives (scripts/readme_times.py)."""


def test_readme_times_are_those_of_the_committed_csv(script):
    readme_times = script("readme_times")
    assert readme_times.current() == readme_times.block(), \
        "README's study times differ: run python scripts/readme_times.py"


def test_the_table_marks_a_missing_profile_and_a_loaded_machine(tmp_path):
    import pandas as pd

    from approxlab.experiments.figures import times_markdown

    times = pd.DataFrame(dict(study=["bridge", "bridge", "kernel_error"], profile=["quick", "full", "quick"],
                              wall_s=[6.0, 600.0, 9.0], cpu_s=[6.0, 300.0, 9.0], other_cpu_load=[0.0, 1.2, 0.0]))
    table = times_markdown(times).splitlines()
    assert table[2] == "| kernel_error | 9 (9 CPU) | — |"
    assert table[3] == "| bridge | 6 (6 CPU) | 10.0 (5.0 CPU; other load 1.2) |"
