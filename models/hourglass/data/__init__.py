"""Data sources for training: MPII annotations, real photos labelled by a teacher, synthetic figures."""
