"""earlyexp learners: demo datasets, behaviour cloning, evaluation and run logging."""
