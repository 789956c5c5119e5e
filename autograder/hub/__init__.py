"""The course on a JupyterHub: one command starts it, for real Unix users.

    python -m autograder.hub start --course DIR --users students.csv
    python -m autograder.hub status | stop

One job per file:
- `roster.py`: the users CSV, and the Unix accounts and groups made from it;
- `student_python.py`: the Python that students' servers run (the student wheel, never this
  repository), and their nbgrader settings;
- `student_exchange.py`: the students' side of the exchange (private submissions, a size limit);
  it is copied into the students' Python, so it imports nothing of ours;
- `exchange.py`: the instructors' side (collect only a student's own folders, private feedback);
- `course.py`: a course folder (the kit's release and nbgrader configuration) and its exchange;
- `hub_config.py`: the JupyterHub configuration: PAM, groups, roles, a formgrader per course;
- `process.py`: starts, finds and stops the hub; `app.py`: JupyterHub, patient with slow
  formgraders;
- `__main__.py`: the command line.
"""
