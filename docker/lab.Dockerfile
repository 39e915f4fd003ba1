# The `lab` service of docker-compose.yml: JupyterLab with the course installed,
# run as an ordinary user. The broker is the `rabbitmq` service next to it.
FROM python:3.11-slim

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

RUN useradd --create-home --uid 1000 learner
WORKDIR /home/learner/workqueue-lab

# Dependencies first: editing a notebook then does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY --chown=learner:learner . .
RUN pip install --no-deps -e . && chown -R learner:learner .

USER learner
EXPOSE 8888
# Jupyter reads its login token from JUPYTER_TOKEN (set in docker-compose.yml).
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "notebooks/00_start_here.ipynb"]
