"""`python -m worker`: one worker process (the Procfile's worker line)."""

from worker.main import run_worker

if __name__ == "__main__":
    run_worker()
