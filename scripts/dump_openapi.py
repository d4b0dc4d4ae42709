"""Print the served OpenAPI document (``GET /taskflow/openapi.json`` at base_url ``/``).

The labextension's TypeScript types are generated from this output
(``jlpm gen:types`` in ``labextension/``), and ``tests/test_api_types.py`` fails when
the committed ``labextension/src/generated/openapi.ts`` no longer matches it. Keys
are sorted so that the output, and so the generated types, depend only on the
document's content.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The document of this checkout, even when another copy of the package is installed:
# the types generated from it are committed beside this source.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytaskflow_jupyter.server.openapi import openapi


def main() -> None:
    print(json.dumps(openapi("/"), indent=2, sort_keys=True))  # noqa: T201


if __name__ == "__main__":
    main()
