"""Serve genaug's scheduled jobs (needs a started Prefect server, see the README).

    .venv/bin/prefect server start &                      # the scheduler lives in the server
    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python -m pipelines.serve

Deployments (cron in the server's time zone, UTC by default):

* ``score-incoming/incoming-nightly`` at 02:00: score every new file in ``data/incoming``;
* ``train-detector/retrain-weekly`` on Sundays at 03:00: retrain on the sample table and
  register; ``champion`` moves only if the gate passes.

``--interval N`` serves the incoming job every N seconds instead (demos and the integration
script ``benchmarks/scheduled_run.py``).
"""

from __future__ import annotations

import argparse
import os

from prefect import serve

from pipelines.batch import score_incoming_flow
from pipelines.train_detector import train_detector


def main(argv: list[str] | None = None) -> None:
    """Register the deployments and run them as they come due (Ctrl-C stops)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--interval", type=float, help="serve score-incoming every N seconds")
    p.add_argument("--incoming", default="data/incoming")
    p.add_argument("--model", default="models:/genaug-detector@champion")
    args = p.parse_args(argv)
    if not os.environ.get("PREFECT_API_URL"):
        raise SystemExit("PREFECT_API_URL is not set: start `prefect server start` and point "
                         "PREFECT_API_URL at it (an embedded server cannot schedule runs)")
    params = {"incoming": args.incoming, "model": args.model}
    if args.interval:
        serve(score_incoming_flow.to_deployment(name="incoming-every", interval=args.interval,
                                                parameters=params))
        return
    serve(
        score_incoming_flow.to_deployment(name="incoming-nightly", cron="0 2 * * *",
                                          parameters=params),
        train_detector.to_deployment(name="retrain-weekly", cron="0 3 * * 0"),
    )


if __name__ == "__main__":
    main()
