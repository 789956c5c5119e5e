"""What the hidden tests know of the assignment: its solution, every variant's, and what an answer
may not import.
"""
