"""CI check: every handler of the extension is authenticated.

Starts a ServerApp with ``allow_unauthenticated_access=False`` and only our extension,
and fails when Jupyter warns about an endpoint without ``@web.authenticated``,
``@ws_authenticated`` or ``@allow_unauthenticated`` (the jupyter extension template's
``check_auth.py``, adapted). Exit status 0 when clean, 1 with the offending endpoints.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import JupyterServerAuthWarning

try:
    import pytaskflow_jupyter  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JupyterServerAuthWarning)
        app = ServerApp(
            allow_unauthenticated_access=False,
            jpserver_extensions={"pytaskflow_jupyter": True},
            reraise_server_extension_failures=True,
            root_dir=tmp,
            port=0,
            open_browser=False,
        )
        app.config.TaskFlowApp.db_path = str(Path(tmp) / "taskflow.db")
        app.config.TaskFlowApp.executor = "thread"
        app.initialize(argv=[], find_extensions=False, new_httpserver=False)
        loaded = "taskflow" in app.web_app.settings
        ours = [
            str(w.message)
            for w in caught
            if issubclass(w.category, JupyterServerAuthWarning)
            and "authorizer unspecified" not in str(w.message)
        ]
    if not loaded:
        print("the pytaskflow_jupyter extension did not load", file=sys.stderr)  # noqa: T201
        return 1
    if ours:
        print("\n".join(ours), file=sys.stderr)  # noqa: T201
        return 1
    from pytaskflow_jupyter.server.app import default_handlers

    print(f"OK: all {len(default_handlers())} pytaskflow routes are authenticated")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
