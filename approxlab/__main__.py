from .experiments.cli import main

if __name__ == "__main__":  # spawned workers (loky, a Dask LocalCluster) import this module too
    main()
