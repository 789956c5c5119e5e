"""Grading a whole class on a Slurm cluster: one job-array task per student, one shared
PostgreSQL gradebook. `python -m autograder.cluster --help`; autograder/README.md explains it."""
