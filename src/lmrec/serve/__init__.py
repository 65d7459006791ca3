"""Real-time personalisation service: ``create_app(settings)`` / ``run_server(settings)``.

A trained model directory is served over HTTP (FastAPI + uvicorn). Natural-language queries and live
events change the very next recommendation without retraining: events are logged durably in SQLite
and folded into per-user online profiles at once; new items are encoded and indexed on PUT.
"""

from lmrec.serve.app import create_app, run_server
from lmrec.serve.ranking import BusinessRule, Candidates, RankContext
from lmrec.serve.service import RecService
from lmrec.serve.settings import ServeSettings

__all__ = ["BusinessRule", "Candidates", "RankContext", "RecService", "ServeSettings", "create_app", "run_server"]
