"""Flow ``evaluate-augmentation``: do synthetic rows help scikit-learn classifiers?

Runs :func:`genaug.evaluation.evaluate_augmentation` (seeded stratified train / validation /
test splits; every arm's sampler sees the training part only; metrics on real test rows) and
logs it to MLflow: one parent run with the summary table, verdicts and a chart with confidence
intervals, and a child run per arm x classifier x split. The same summary becomes a Prefect
table artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from genaug import read_table
from genaug.augmented import split_target
from genaug.evaluation import EvaluationResult, evaluate_augmentation
from genaug.images import is_image_source
from genaug.samplers import is_generator_arm, make_arm
from pipelines._retry import retry_unless_bad_input

ARMS = ("none", "random", "smote", "vae", "gan", "default+filter")
CLASSIFIERS = ("logreg", "rf", "hgb")


@task(retries=1, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input,
      cache_policy=NO_CACHE)
def run_evaluation(data: str, target: str, arms: list[str], classifiers: list[str],
                   n_splits: int, positive: Any, ratios: list[float] | None, random_state: int,
                   augmenter_params: dict[str, Any], max_rows: int | None) -> EvaluationResult:
    """Read the table (a stratified subsample of ``max_rows`` when larger) and evaluate."""
    from sklearn.model_selection import train_test_split

    from genaug.tracking import check_store

    check_store()  # fail before a long evaluation whose result could not be logged
    X, y = split_target(read_table(data), target, data)
    if max_rows is not None and len(X) > max_rows:
        X, _, y, _ = train_test_split(X, y, train_size=max_rows, stratify=y,
                                      random_state=random_state)
        get_run_logger().info("evaluating on a stratified subsample of %d rows", max_rows)
    factories = {a: make_arm(a, **augmenter_params) if is_generator_arm(a) else make_arm(a)
                 for a in arms}
    return evaluate_augmentation(X.reset_index(drop=True), y.to_numpy(), factories,
                                 classifiers=classifiers, n_splits=n_splits, positive=positive,
                                 ratios=ratios, random_state=random_state, progress=True)


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def log_result(result: EvaluationResult, data: str, params: dict[str, Any]) -> tuple[str, str]:
    """Parent and child runs in MLflow."""
    from genaug import tracking

    return tracking.log_evaluation(result, dataset_name=Path(data).stem,
                                   source=str(Path(data).resolve()), params=params)


def summary_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """One row per arm x classifier: PR-AUC and ROC-AUC means with CIs, the PR-AUC difference
    to the baseline with its CI, and the verdict."""
    s = result.summary(metrics=("pr_auc", "roc_auc", "f1", "balanced_accuracy"))
    verdicts = {}
    if result.baseline is not None and (result.records["arm"] != result.baseline).any():
        v = result.verdicts()
        verdicts = {(a, c): vd for a, c, vd in zip(v["arm"], v["classifier"], v["verdict"])}
    rows = []
    for (arm, clf), g in s.groupby(["arm", "classifier"], sort=False):
        m = g.set_index("metric")
        pr = m.loc["pr_auc"]
        row = {"arm": arm, "classifier": clf,
               "pr_auc": f"{pr['mean']:.3f} [{pr['ci_low']:.3f}, {pr['ci_high']:.3f}]"}
        for k in ("roc_auc", "f1", "balanced_accuracy"):
            row[k] = f"{m.loc[k, 'mean']:.3f}"
        row["pr_auc_diff"] = ("" if arm == result.baseline else
                              f"{pr['diff']:+.3f} [{pr['diff_low']:+.3f}, {pr['diff_high']:+.3f}]")
        row["verdict"] = verdicts.get((arm, clf), "baseline")
        rows.append(row)
    return rows


@flow(name="evaluate-augmentation", log_prints=True)
def evaluate_augmentation_flow(
    data: str = "data/sample/adult_train.parquet",
    target: str = "income",
    arms: list[str] | None = None,
    classifiers: list[str] | None = None,
    n_splits: int = 5,
    positive: Any = None,
    ratios: list[float] | None = None,
    random_state: int = 0,
    augmenter_params: dict[str, Any] | None = None,
    max_rows: int | None = 5000,
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    """Compare ``arms`` (names of :func:`genaug.samplers.make_arm`: none, random, smote, vae,
    gan, default, with "+drop", "+reject" or "+filter" for the anomaly filters; default
    ``ARMS``) with ``classifiers`` (logreg, rf, hgb; default all) over ``n_splits`` splits, on
    ``positive`` (default: the rarest class). ``augmenter_params`` go to every genaug generator
    arm; ``ratios`` (e.g. ``[0.5, 1.0]``) lets the validation part choose how far to grow the
    positive class. Tables above ``max_rows`` are subsampled (stratified) first.

    A folder or ``.npz`` of labelled images goes to the image flow
    ``evaluate-image-augmentation`` (``positive`` cut to 5 % of the images; arms none / random
    / gan on pixels; ``augmenter_params`` go to the image GAN).
    """
    if is_image_source(data):  # labelled images: the rare-class setup on pixels
        from pipelines.images import evaluate_image_augmentation_flow

        return evaluate_image_augmentation_flow(
            data=data, positive=positive, arms=arms, classifiers=classifiers, n_splits=n_splits,
            random_state=random_state, gan_params=augmenter_params)
    arms, classifiers = list(arms or ARMS), list(classifiers or CLASSIFIERS)
    result = run_evaluation(data, target, arms, classifiers, n_splits, positive,
                            ratios, random_state, augmenter_params or {}, max_rows)
    rows = summary_rows(result)
    res: dict[str, Any] = {"positive": result.positive, "baseline": result.baseline,
                           "table": rows, "markdown": result.to_markdown()}
    if log_to_mlflow:
        params = {"data": data, "target": target, "max_rows": max_rows,
                  "augmenter_params": augmenter_params or {}}
        res["run_id"], res["url"] = log_result(result, data, params)
    create_table_artifact(key="augmentation-evaluation", table=rows,
                          description=f"Augmentation evaluation on `{data}` (positive class "
                                      f"`{result.positive}`, {n_splits} splits)")
    link = f"\n\nMLflow: {res['url']}" if res.get("url") else ""
    create_markdown_artifact(key="augmentation-evaluation-report",
                             markdown=f"### Augmentation evaluation `{data}`\n\n"
                                      f"{res['markdown']}{link}\n")
    print(res["markdown"])
    return res


if __name__ == "__main__":
    evaluate_augmentation_flow()
