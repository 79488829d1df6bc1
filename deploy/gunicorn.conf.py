"""gunicorn's configuration for CTIMS (deploy/ctims-web.service runs `gunicorn -c deploy/gunicorn.conf.py`).

Every value comes from the environment file (deploy/ctims.env.example), so the unit never changes.
"""

import os
import re

from gunicorn.glogging import Logger

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Threaded workers: the requests that take long (STOW bodies, whole series) are bounded by nginx's buffering and
# the proxy hands large files to nginx (X-Accel-Redirect), so a thread is never held by a slow client. Each worker
# serves GUNICORN_THREADS requests at once and keeps connections open (nginx's upstream keep-alive), which
# `bench dicomweb --http --orthanc --server nginx` measured faster than synchronous workers (one request per
# process, a new connection each). Each thread keeps its own database connection (DB_CONN_MAX_AGE): workers x
# threads must fit PostgreSQL's max_connections beside Celery's. GUNICORN_WORKER_CLASS=sync goes back.
# One process per core plus one: the threads serve the waits (disk, network, database), the processes the CPU;
# on 8 cores that is 9 x 4 = 36 database connections.
workers = int(os.environ.get("GUNICORN_WORKERS", str((os.cpu_count() or 1) + 1)))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# nginx buffers a STOW body (up to 2 GiB) before passing it on at disk speed; a whole series streamed without
# X-Accel-Redirect; both must finish within this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 30
# Workers are recycled now and then, so that a slow leak in a library (pydicom, Pillow) never grows unbounded.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
# The proxy in front sets X-Forwarded-For/Proto; trust them only from it (loopback by default).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"
errorlog = "-"
# No query strings in the access log: a QIDO search can carry a pseudonymous PatientID.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
# A STOW on a study's path (.../uploads/<id>/studies/<study>) names, on the server path, the site's original Study
# Instance UID: the access log leaves the study out, as nginx's does (deploy/nginx-ctims.conf).
STUDY_PATH = re.compile(r"(/uploads/[0-9]+/studies/)[^/?\s]+")


class AccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("U", "r"):
            atoms[name] = STUDY_PATH.sub(r"\1{study}", atoms[name])
        return atoms


logger_class = AccessLogger


def on_starting(server):
    """Prometheus' multiprocess mode needs its folder; it is emptied only at boot (systemd-tmpfiles, under /run),
    never here: the Celery workers write there too, and a dead process's counters still belong to the totals."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    """A worker that exits leaves its counters to the others' totals, but its gauges are dropped."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
