"""Ranking that learns from feedback: impressions, negative signals, exploration, off-policy evaluation.

- `lmrec.serve.feedback.config`: `FeedbackSettings` (``ServeSettings.feedback``);
- `lmrec.serve.feedback.loop`: `FeedbackLoop`, what `RecService` calls around retrieval and ingestion;
- `lmrec.serve.feedback.linear`: the linear Thompson-sampling model of the re-ranker;
- `lmrec.serve.feedback.features`: its features;
- `lmrec.serve.feedback.impressions`: the durable impression log;
- `lmrec.serve.feedback.policy`: off-policy estimates of a re-ranking policy from that log;
- `lmrec.serve.feedback.simulate`: a replay simulator that drives the service in-process.

This package's ``__init__`` imports nothing: `lmrec.serve.settings` imports the config module, and
the loop imports the settings' neighbours.
"""
