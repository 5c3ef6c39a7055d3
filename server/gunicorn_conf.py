"""gunicorn settings for the Procfile's web process: aiohttp workers, shutdown, logs, checks.

Inside the package, so an installed chatrelay has them: `gunicorn server.app:serve --config
python:server.gunicorn_conf`. The Procfile passes the bind (0.0.0.0:$PORT); gunicorn takes
the worker count from WEB_CONCURRENCY (1 when unset). Start-up problems stop the master
with a one-line reason.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

# prometheus_client picks multiprocess mode when first imported: the directory comes first.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chatrelay-metrics-")
_metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
_metrics_dir.mkdir(parents=True, exist_ok=True)
# Files of an earlier run would be counted as this run's.
for _stale in _metrics_dir.glob("*.db"):
    _stale.unlink()

from prometheus_client import multiprocess  # noqa: E402

from server.config import ConfigError, Settings, bind_host, startup_problem  # noqa: E402
from server.runner import shutdown_budget_s  # noqa: E402
from server.telemetry import logging_config  # noqa: E402
from server.web.page import page_problem  # noqa: E402

# gunicorn's worker notices SIGTERM on its next one-second tick.
WORKER_TICK_S = 1.0

try:
    _settings = Settings.from_env(os.environ)
except ConfigError as _error:
    print(f"chatrelay: {_error}", file=sys.stderr)
    sys.exit(2)

# uvloop where installed (see server/runner.py's new_event_loop).
worker_class = (
    "aiohttp.GunicornUVLoopWebWorker" if find_spec("uvloop") else "aiohttp.GunicornWebWorker"
)
proc_name = "chatrelay"
# The master kills workers still alive after this; it covers their whole shutdown and
# stays under the platform's 30 s with the default SHUTDOWN_GRACE of 20 s.
graceful_timeout = math.ceil(shutdown_budget_s(_settings.shutdown_grace_s) + WORKER_TICK_S)
logconfig_dict = logging_config(_settings.log_level, _settings.log_format)
# gunicorn 27's control socket lives at one path per user; two apps on a machine would clash.
control_socket_disable = True


def on_starting(server: Any) -> None:
    bind = bind_host(server.cfg.bind)
    problem = startup_problem(os.environ, bind, server.cfg.workers) or page_problem()
    if problem:
        print(f"chatrelay: {problem}", file=sys.stderr)
        sys.exit(2)


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's running-chats and open-sockets gauges must stop counting.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
