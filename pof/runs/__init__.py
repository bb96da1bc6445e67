"""Run folders and jobs: the unit the CLI, the analysis tools and the app share.

run        Run: a folder's config, status, metrics log and checkpoints; list_runs
folder     where each file of a run lives, and its status written and read safely
create     claiming a folder for a new run, or for a resume, exclusively
reading    reading a run's files safely (size limits, regular files only)
liveness   whether a job's process is alive
jobqueue   one background job at a time (the app's queue)
"""
