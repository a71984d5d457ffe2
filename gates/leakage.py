"""Leakage gate: copies across the split and before it, label proxies, membership inference, and
a declared id or time column that leaks."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from gatewise.data import as_times, fingerprint, label_vector
from gatewise.gates.evidence import failure_reason, json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.gates.metrics import roc_auc
from gatewise.types import GateResult, Schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

GATE = "leakage"
# Additive smoothing of the duplication model's conditional tables: a pattern never seen still
# has some probability, so one row's copy is not certain to exist.
SMOOTHING = 0.5
ATTACK_SEED = 0
_MEMO_SIZE = 8
_memo: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()
_memo_lock = threading.Lock()


def _row_keys(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """One hash per row over features and label, blind to dtype (1 read as int or float alike)."""
    import pandas as pd

    columns = [*schema.features, schema.label]
    canonical = pd.DataFrame(
        {
            column: (
                pd.to_numeric(frame[column], errors="coerce").astype("float64")
                if column in schema.numeric
                else frame[column].astype("object").where(frame[column].notna(), None).astype(str)
            )
            for column in columns
        }
    )
    return pd.util.hash_pandas_object(canonical, index=False).to_numpy()


def duplicate_overlap(train: pd.DataFrame, test: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """How many test rows were copied from train, beyond what the data's own duplication explains.

    ``observed``: the share of test rows with an exact copy (features and label) in train.
    ``expected``: the share of train rows with an exact copy among the *other* train rows. Under a
    random split both estimate the same thing (does a row meet a copy of itself among about
    n_train rows drawn from the same data), so on clean data they agree: on arrests both are
    about 0.53 although no row leaked.
    If a share c of the test rows were copied from train and the rest split at random, then
    observed = c + (1 - c) * expected, so c = (observed - expected) / (1 - expected): the
    ``excess_share`` gated here. The check cannot see duplication made before the split (e.g.
    oversampling), which is indistinguishable from a dataset's natural duplicates.
    """
    import math

    import numpy as np
    import pandas as pd

    train_keys, test_keys = _row_keys(train, schema), _row_keys(test, schema)
    in_train = np.isin(test_keys, train_keys)
    counts = pd.Series(train_keys).map(pd.Series(train_keys).value_counts()).to_numpy()
    observed = float(in_train.mean()) if len(test_keys) else 0.0
    expected = float((counts > 1).mean()) if len(train_keys) else 0.0
    room = 1.0 - expected  # the share of test rows the data's duplication leaves without a copy
    excess = (observed - expected) / room if room > 0 else 0.0
    # Binomial standard error of the excess: how far clean data may stray by chance (small tables).
    parts = ((observed, len(test_keys)), (expected, len(train_keys)))
    variance = sum(share * (1 - share) / rows for share, rows in parts if rows)
    return {
        "test_rows": len(test_keys),
        "test_rows_with_copy_in_train": int(in_train.sum()),
        "share_with_copy_in_train": observed,
        "expected_share_from_train_duplication": expected,
        "excess_share": excess,
        "excess_share_standard_error": math.sqrt(variance) / room if room > 0 else None,
    }


def single_feature_auc(train: pd.DataFrame, test: pd.DataFrame, schema: Schema) -> dict[str, float | None]:
    """ROC AUC on test of each feature alone as a score for the label.

    Numeric: the raw value (missing: the train median), max(auc, 1 - auc) since either direction
    leaks. Categorical: each category's positive rate learned on train (unseen or missing: the
    train base rate), so a relabelled copy of the label scores 1.0 but an id column scores 0.5.
    """
    y_test = label_vector(test, schema)
    result: dict[str, float | None] = {}
    for column in schema.features:
        auc = roc_auc(y_test, _feature_score(train, test, schema, column))
        result[column] = None if auc is None else (max(auc, 1.0 - auc) if column in schema.numeric else auc)
    return result


def _feature_score(train: pd.DataFrame, frame: pd.DataFrame, schema: Schema, column: str) -> np.ndarray:
    """One feature as a number: numeric as is (missing: train median), categorical as its train positive rate."""
    import pandas as pd

    if column in schema.numeric:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        return values.fillna(pd.to_numeric(train[column], errors="coerce").median()).fillna(0.0).to_numpy()
    y_train = label_vector(train, schema)
    rates = pd.Series(y_train).groupby(train[column].astype(str).to_numpy()).mean()
    base_rate = float(y_train.mean()) if len(y_train) else 0.5
    learned = frame[column].astype(str).map(rates).where(frame[column].notna(), base_rate).fillna(base_rate)
    return learned.to_numpy(dtype="float64")


def _others_score(train: pd.DataFrame, frame: pd.DataFrame, schema: Schema, left_out: set[str]) -> np.ndarray | None:
    """What the features other than ``left_out`` predict of the label: a logistic regression fitted
    on train (one-hot categories, standardized numbers), scored on ``frame``. None if nothing is left."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in schema.numeric if c not in left_out]
    categorical = [c for c in schema.categorical if c not in left_out]
    y = label_vector(train, schema)
    if not numeric and not categorical or len(set(y)) < 2:
        return None
    encode = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])

    def prepare(table: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        columns = {c: pd.to_numeric(table[c], errors="coerce").astype("float64") for c in numeric}
        columns.update({c: table[c].astype(str) for c in categorical})
        return pd.DataFrame(columns)

    model = make_pipeline(encode, LogisticRegression(max_iter=500))
    model.fit(prepare(train), y)
    return model.decision_function(prepare(frame))


def label_proxies(train: pd.DataFrame, test: pd.DataFrame, schema: Schema, aucs: dict[str, float | None], policy: Any) -> dict[str, Any]:
    """Judge each feature whose single-feature AUC exceeds max_single_feature_auc.

    A strong feature is a label proxy when it carries nothing but the label: within each label
    class it is unrelated to what the other features predict. A noisy copy of the label (the
    label plus noise) is exactly that. A feature that legitimately carries the signal is a cause
    or a measurement of the same person: within a class it moves with the other features (when
    they explain some of the outcome, a low value of one must be made up by the others). The test
    is the Spearman correlation, within each class, between the feature and the other features'
    logistic score, on train and test rows together; |Fisher z| below min_proxy_dependence_z in
    every class marks a proxy. At or above max_proxy_auc a feature is a copy whatever else holds.
    """
    import math

    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr

    suspects = sorted(c for c, auc in aucs.items() if auc is not None and auc > policy.max_single_feature_auc)
    report: dict[str, Any] = {}
    if not suspects:
        return report
    rows = pd.concat([train, test], ignore_index=True)
    y = label_vector(rows, schema)
    others = _others_score(train, rows, schema, set(suspects))
    for column in suspects:
        auc = aucs[column]
        entry: dict[str, Any] = {"single_feature_auc": auc, "classes": {}}
        if auc >= policy.max_proxy_auc:
            entry.update(proxy=True, why=f"single-feature AUC {auc:.3f} >= {policy.max_proxy_auc:.3f}")
            report[column] = entry
            continue
        value = _feature_score(train, rows, schema, column)
        strongest = 0.0
        for label in (0, 1):
            mask = y == label
            n = int(mask.sum())
            if others is None or n < 10 or np.ptp(value[mask]) == 0 or np.ptp(others[mask]) == 0:
                entry["classes"][str(label)] = {"rows": n, "spearman": None, "fisher_z": None}
                continue
            rho = float(spearmanr(value[mask], others[mask]).statistic)
            z = math.atanh(max(min(rho, 0.999999), -0.999999)) * math.sqrt(max(n - 3, 1))
            entry["classes"][str(label)] = {"rows": n, "spearman": rho, "fisher_z": z}
            strongest = max(strongest, abs(z))
        entry["max_abs_fisher_z"] = strongest
        entry["proxy"] = strongest < policy.min_proxy_dependence_z
        entry["why"] = (
            f"within each label class unrelated to the other features (|z| {strongest:.1f} < {policy.min_proxy_dependence_z:g})"
            if entry["proxy"]
            else f"moves with the other features within a label class (|z| {strongest:.1f} >= {policy.min_proxy_dependence_z:g}): a strong feature, not a copy"
        )
        report[column] = entry
    return report


def _coded(frame: pd.DataFrame, columns: list[str], schema: Schema) -> np.ndarray:
    """Each column's values as integer codes, compared as the duplicate check compares them."""
    import numpy as np
    import pandas as pd

    coded = []
    for column in columns:
        if column in schema.numeric:
            values = pd.to_numeric(frame[column], errors="coerce").astype("float64").fillna(np.inf)
        else:
            values = frame[column].astype("object").where(frame[column].notna(), None).astype(str)
        coded.append(pd.factorize(values)[0])
    return np.stack(coded, axis=1)


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information of two coded columns (``_coded``: codes 0..k-1), from the pairs that
    occur (never a dense table: two columns of distinct floats would need rows x rows cells).
    The pairs are found by hashing, not sorting, so the cost stays linear in the rows; they are
    summed in the order of their keys."""
    import numpy as np
    import pandas as pd

    n = len(a)
    a_counts, b_counts = np.bincount(a), np.bincount(b)
    pair_index, pairs = pd.factorize(a.astype("int64") * len(b_counts) + b)
    joint = np.bincount(pair_index, minlength=len(pairs))
    order = np.argsort(pairs)
    pairs, joint = pairs[order], joint[order]
    expected = a_counts[pairs // len(b_counts)] * b_counts[pairs % len(b_counts)] / n
    return float((joint / n * np.log(joint / expected)).sum())


def pre_split_duplication(train: pd.DataFrame, test: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Rows duplicated beyond what the data's own joint distribution predicts (copies made before the split).

    The joint distribution of the rows (features and label) is modelled by a Chow-Liu tree: each
    column conditioned on the one other column it shares most information with, with smoothed
    counts. A row of probability p among n rows is expected to have a copy with chance
    1 - (1 - p)^(n - 1); the mean of that over the rows is the share of rows the data's own
    distribution explains having a copy. Copying rows (oversampling, a joined table repeated)
    creates copies of rare patterns that the model finds improbable: the observed share rises
    above the expected one. As for the split check, the excess is (observed - expected) / (1 - expected).
    """
    import numpy as np
    import pandas as pd

    rows = pd.concat([train, test], ignore_index=True)
    columns = [*schema.features, schema.label]
    codes = _coded(rows, columns, schema)
    n, k = codes.shape
    information = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            information[i, j] = information[j, i] = _mutual_information(codes[:, i], codes[:, j])
    parent: dict[int, int | None] = {0: None}
    while len(parent) < k:  # Prim's maximum spanning tree over the mutual information
        i, j = max(((i, j) for i in parent for j in range(k) if j not in parent), key=lambda edge: information[edge])
        parent[j] = i
    log_p = np.zeros(n)
    for j in range(k):
        x = codes[:, j]
        card = int(x.max()) + 1
        if parent[j] is None:
            counts = np.bincount(x, minlength=card)
            log_p += np.log((counts[x] + SMOOTHING) / (n + SMOOTHING * card))
        else:
            given = codes[:, parent[j]]
            joint = given.astype("int64") * card + x
            joint_inverse, _ = pd.factorize(joint)  # hashed, not sorted: linear in the rows
            joint_counts, given_counts = np.bincount(joint_inverse), np.bincount(given)
            log_p += np.log((joint_counts[joint_inverse] + SMOOTHING) / (given_counts[given] + SMOOTHING * card))
    expected = float((1 - np.exp((n - 1) * np.log1p(-np.exp(log_p)))).mean()) if n else 0.0
    keys = pd.util.hash_pandas_object(pd.DataFrame(codes), index=False)
    observed = float((keys.map(keys.value_counts()) > 1).mean()) if n else 0.0
    room = 1.0 - expected
    return {
        "rows": n,
        "share_with_copy": observed,
        "expected_share_with_copy": expected,
        "excess_share": (observed - expected) / room if room > 0 else 0.0,
        "model": "Chow-Liu tree over features and label, smoothed counts",
        "tree": {columns[j]: (columns[p] if p is not None else None) for j, p in parent.items()},
    }


def membership_advantage(
    train: pd.DataFrame, test: pd.DataFrame, schema: Schema, predict: Any, test_scores: Any = None
) -> dict[str, Any]:
    """Loss-threshold membership inference (Yeom et al.): how well a row's loss tells training rows
    from held-out rows. Advantage = max over thresholds of TPR - FPR, members = a seeded sample of
    training rows as large as the test split. 0: the model treats both alike; 1: it gives its
    training set away."""
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    size = min(len(train), len(test))
    members = train.sample(n=size, random_state=ATTACK_SEED) if len(train) > size else train
    held_out = test.sample(n=size, random_state=ATTACK_SEED) if len(test) > size else test

    def loss(frame: pd.DataFrame, scores: Any = None) -> np.ndarray:
        p = np.clip(np.asarray(predict(frame) if scores is None else scores, dtype="float64"), 1e-6, 1 - 1e-6)
        y = label_vector(frame, schema)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    # The whole test split held out: its scores are already known.
    known = test_scores if held_out is test and test_scores is not None else None
    losses = np.concatenate([loss(members), loss(held_out, known)])
    truth = np.r_[np.ones(len(members)), np.zeros(len(held_out))]
    fpr, tpr, _ = roc_curve(truth, -losses)
    return {
        "attack": "loss threshold",
        "advantage": float((tpr - fpr).max()),
        "attack_auc": float(roc_auc_score(truth, -losses)),
        "member_rows": int(len(members)),
        "held_out_rows": int(len(held_out)),
        "member_mean_loss": float(losses[: len(members)].mean()),
        "held_out_mean_loss": float(losses[len(members):].mean()),
        "seed": ATTACK_SEED,
    }


def id_leakage(train: pd.DataFrame, test: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Does the declared id order or predict the label? The ROC AUC of the id's rank (numbers by
    value, anything else in sort order) as a score for the label over all rows, either direction."""
    import pandas as pd

    rows = pd.concat([train, test], ignore_index=True)
    column = rows[schema.id_column]
    numeric = pd.to_numeric(column, errors="coerce")
    rank = numeric.rank() if numeric.notna().all() else column.astype(str).rank()
    auc = roc_auc(label_vector(rows, schema), rank.to_numpy(dtype="float64"))
    return {"column": schema.id_column, "rows": len(rows), "auc": None if auc is None else max(auc, 1 - auc)}


def time_leakage(train: pd.DataFrame, test: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Share of test rows dated strictly before the latest training row: a model tested on the
    past it was trained after. A random split of dated rows puts most test rows there."""
    train_times, test_times = as_times(train[schema.time_column]), as_times(test[schema.time_column])
    latest = train_times.max()
    before = test_times < latest
    unparsed = int(test_times.isna().sum() + train_times.isna().sum())
    return {
        "column": schema.time_column,
        "latest_training_time": str(latest),
        "earliest_test_time": str(test_times.min()),
        "test_rows_before_latest_training_row": int(before.sum()),
        "test_before_train_share": float(before.mean()) if len(before) else 0.0,
        "unparsed_times": unparsed,
    }


def _data_checks(train: pd.DataFrame, test: pd.DataFrame, schema: Schema, policy: Any) -> dict[str, Any]:
    """The checks that depend on the data alone (copies, proxies, id, time), once per split.

    Every candidate of a run shares the split, so, as the drift gate does for its report, the
    result is kept per (train content, test content, schema, policy); the last few only.
    """
    import copy

    key = (fingerprint(train), fingerprint(test), repr(schema), policy.model_dump_json())
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return copy.deepcopy(_memo[key])
    aucs = single_feature_auc(train, test, schema)
    checks = {
        "duplicates": duplicate_overlap(train, test, schema),
        "duplication": pre_split_duplication(train, test, schema),
        "aucs": aucs,
        "proxies": label_proxies(train, test, schema, aucs, policy),
        "id": id_leakage(train, test, schema) if schema.id_column else None,
        "time": time_leakage(train, test, schema) if schema.time_column else None,
    }
    with _memo_lock:
        _memo[key] = checks
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return copy.deepcopy(checks)


def leakage(inputs: GateInputs) -> GateResult:
    """Fails on copies across or before the split, a label proxy, a membership-inference advantage
    (or its growth over the parent), or a declared id or time column that leaks.

    ``value`` is the worst single-feature AUC. An undefined AUC (a single label class on test)
    cannot rule leakage out, so it fails.
    """
    import numpy as np

    policy = inputs.policy.leakage
    schema = inputs.schema
    failed: list[str] = []
    parts: list[str] = []

    data = _data_checks(inputs.train, inputs.test, schema, policy)
    duplicates = data["duplicates"]
    split_ok = duplicates["excess_share"] <= policy.max_excess_duplicate_share
    if not split_ok:
        failed.append("max_excess_duplicate_share")
    parts.append(
        f"test rows with a copy in train {duplicates['share_with_copy_in_train']:.3f} "
        f"(data's own duplication explains {duplicates['expected_share_from_train_duplication']:.3f}), "
        f"excess {duplicates['excess_share']:.3f} {'<=' if split_ok else '>'} {policy.max_excess_duplicate_share:.3f}"
    )
    duplication = data["duplication"]
    copies_ok = duplication["excess_share"] <= policy.max_duplication_excess
    if not copies_ok:
        failed.append("max_duplication_excess")
    parts.append(
        f"rows with a copy {duplication['share_with_copy']:.3f} vs {duplication['expected_share_with_copy']:.3f} "
        f"the joint distribution predicts, excess {duplication['excess_share']:.3f} "
        f"{'<=' if copies_ok else '>'} {policy.max_duplication_excess:.3f}"
    )

    aucs = data["aucs"]
    defined = {column: auc for column, auc in aucs.items() if auc is not None}
    worst_column = max(defined, key=defined.__getitem__) if defined else None
    worst = defined[worst_column] if worst_column is not None else None
    proxies = data["proxies"]
    leaking = sorted(column for column, entry in proxies.items() if entry["proxy"])
    strong = sorted(column for column, entry in proxies.items() if not entry["proxy"])
    if leaking or worst is None:
        failed.append("label_proxy")
    if worst is None:
        parts.append("single-feature AUC undefined (one label class on test)")
    elif leaking:
        named = ", ".join(f"{c} (AUC {aucs[c]:.3f}, {proxies[c]['why']})" for c in leaking)
        parts.append(f"label proxy: {named}")
    else:
        parts.append(
            f"worst single-feature AUC {worst:.3f} ({worst_column})"
            + (f"; strong but not a proxy: {', '.join(strong)}" if strong else "")
        )

    membership = membership_advantage(inputs.train, inputs.test, schema, inputs.predict_proba, inputs.scores)
    advantage = membership["advantage"]
    advantage_ok = advantage <= policy.max_membership_advantage
    if not advantage_ok:
        failed.append("max_membership_advantage")
    text = f"membership advantage {advantage:.3f} {'<=' if advantage_ok else '>'} {policy.max_membership_advantage:.3f}"
    if inputs.parent_predict_proba is not None:
        parent_membership = membership_advantage(
            inputs.train, inputs.test, schema, inputs.parent_predict_proba, inputs.parent_scores
        )
        increase = advantage - parent_membership["advantage"]
        membership["parent_advantage"] = parent_membership["advantage"]
        membership["increase_vs_parent"] = increase
        increase_ok = increase <= policy.max_membership_advantage_increase_vs_parent
        if not increase_ok:
            failed.append("max_membership_advantage_increase_vs_parent")
        text += (f", {increase:+.3f} vs parent {'<=' if increase_ok else '>'} "
                 f"{policy.max_membership_advantage_increase_vs_parent:.3f}")
    parts.append(text)

    declared: dict[str, Any] = {}
    if schema.id_column:
        declared["id"] = data["id"]
        auc = declared["id"]["auc"]
        id_ok = auc is not None and auc <= policy.max_id_auc
        if not id_ok:
            failed.append("max_id_auc")
        parts.append(f"id '{schema.id_column}' AUC {auc if auc is None else round(auc, 3)} {'<=' if id_ok else '>'} {policy.max_id_auc:.3f}")
    if schema.time_column:
        declared["time"] = data["time"]
        share = declared["time"]["test_before_train_share"]
        time_ok = share <= policy.max_test_before_train_share
        if not time_ok:
            failed.append("max_test_before_train_share")
        parts.append(
            f"test rows before the latest training row ('{schema.time_column}') {share:.3f} "
            f"{'<=' if time_ok else '>'} {policy.max_test_before_train_share:.3f}"
            + ("" if time_ok else ": use --split time")
        )

    # The failing parts first, so a cut summary still names what failed.
    summary = "; ".join(parts)
    details = {
        "duplicates": {**duplicates, "max_excess_duplicate_share": policy.max_excess_duplicate_share},
        "pre_split_duplication": {**duplication, "max_duplication_excess": policy.max_duplication_excess},
        "single_feature_auc": aucs,
        "worst_feature": worst_column,
        "label_proxies": proxies,
        "leaking_features": leaking,
        "max_single_feature_auc": policy.max_single_feature_auc,
        "max_proxy_auc": policy.max_proxy_auc,
        "min_proxy_dependence_z": policy.min_proxy_dependence_z,
        "membership_inference": {**membership, "max_membership_advantage": policy.max_membership_advantage,
                                 "max_membership_advantage_increase_vs_parent": policy.max_membership_advantage_increase_vs_parent},
        "declared_columns": declared,
        "max_id_auc": policy.max_id_auc,
        "max_test_before_train_share": policy.max_test_before_train_share,
        "failed_checks": failed,
        "reason": failure_reason(GATE, failed, summary),
    }
    return GateResult(
        gate=GATE,
        passed=not failed,
        value=number(worst),
        threshold=policy.max_single_feature_auc,
        summary=summary[:900],
        details=json_ready(details),
    )
