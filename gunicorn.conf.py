"""gunicorn reads ./gunicorn.conf.py when started here without --config: the package's settings.

The Procfile names them itself (`--config python:server.gunicorn_conf`), so an installed
package needs no file beside it; this one keeps a bare `gunicorn server.app:serve` run from
a clone on the same settings.
"""

from server.gunicorn_conf import *  # noqa: F403
