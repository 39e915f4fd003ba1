# JupyterLab terminals opened from the course (jupyter/start-lab): your usual ~/.bashrc, then the
# course's Python first on PATH, so `python worker.py` uses the environment that has pika.
if [ -f "$HOME/.bashrc" ]; then
    . "$HOME/.bashrc"
fi
if [ -n "${WORKQUEUE_LAB_VENV:-}" ] && [ -d "$WORKQUEUE_LAB_VENV/bin" ]; then
    export VIRTUAL_ENV="$WORKQUEUE_LAB_VENV"
    export PATH="$WORKQUEUE_LAB_VENV/bin:$PATH"
fi
