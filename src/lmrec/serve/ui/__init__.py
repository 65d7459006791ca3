"""A web console for ``lmrec serve`` at ``/ui``: try the recommender as a user, look inside the
catalogue, the model and the live service, and open evaluation reports.

Server-rendered page shells plus one small vanilla script (`static/console.js`): no build step, no
CDN, works offline. The data comes from the API itself under the same access control
(`lmrec.serve.ui.routes`).
"""

from lmrec.serve.ui.routes import console_router, mount_console

__all__ = ["console_router", "mount_console"]
