"""The similarity report: which students' code resembles whose, and the solution."""
