"""Real-time personalisation service: ``create_app(settings)`` / ``run_server(settings)``.

A trained model directory is served over HTTP (FastAPI + uvicorn). Natural-language queries and live
events change the very next recommendation without retraining: events are logged durably in SQLite
and folded into per-user online profiles at once; new items are encoded and indexed on PUT. A new
model version is swapped in while serving (``POST /admin/model`` or a watched directory of versions,
`lmrec.serve.swap`) without failing a request.
"""

from lmrec.serve.app import create_app, run_server
from lmrec.serve.ranking import BusinessRule, Candidates, RankContext
from lmrec.serve.service import RecService
from lmrec.serve.settings import ServeSettings
from lmrec.serve.swap import ModelHost

__all__ = [
    "BusinessRule",
    "Candidates",
    "ModelHost",
    "RankContext",
    "RecService",
    "ServeSettings",
    "create_app",
    "run_server",
]
