"""One colabot for a whole lab: who owns each job, whose job runs next, the quotas that hold a
job back or refuse it, and the GPU-hours each person used. Pure decisions; the engine and the
store do the I/O."""
