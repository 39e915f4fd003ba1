# The `lab` service of docker-compose.yml: JupyterLab with the course installed,
# run as an ordinary user. The broker is the `rabbitmq` service next to it.
# Debian 13 (trixie): its rabbitmq-server is RabbitMQ 4.0.5, the release the compose broker runs.
FROM python:3.11-slim-trixie

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

# A RabbitMQ of the learner's own, beside the compose broker: notebook 04 restarts and kills a broker and
# notebook 08 starts a three-node cluster, which the lab never does to a shared broker. The lab runs these as
# private nodes of the learner's user (as on Binder); the package's own service is never started here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 learner
WORKDIR /home/learner/workqueue-lab

# Dependencies first: editing a notebook then does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY --chown=learner:learner . .
RUN pip install --no-deps -e . && chown -R learner:learner . \
 && mkdir -p /usr/local/share/jupyter/lab/settings \
 && cp jupyter/overrides.json /usr/local/share/jupyter/lab/settings/overrides.json

USER learner
EXPOSE 8888
# The way `make lab` starts it (jupyter/start-lab: repository root, terminals with the course's Python,
# notebooks saved output-free); the login token comes from JUPYTER_TOKEN (set in docker-compose.yml).
ENV VENV=/usr/local LAB_IP=0.0.0.0 LAB_PORT=8888
CMD ["jupyter/start-lab", "--no-browser"]
