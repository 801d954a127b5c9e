"""The training campaign's curves, from the files it commits (``campaign/`` in the repository).

A campaign (``campaign/README.md``) trains both networks on one fixed schedule over several
sessions; each session appends a row per epoch to ``PROFILE-{initial,boundary}.log.jsonl``
(loss, training accuracy, the training-side validation accuracy, the run that made it) and a row
per scored checkpoint to ``validation.jsonl`` (mean and worst refined pixel accuracy on the
camera validation set, and the shipped default's).  :func:`campaign_curves` reads them;
:func:`campaign_figure` draws them, one colour a session.  ``candidates.jsonl`` holds one row per
checkpoint put to the selection rule (``scripts/campaign_candidate.py``); :func:`rule_verdict`
and :func:`blur_effect` say in words what its latest row measured, for chapters 1, 3, 9 and 11.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = [
    "ablation_table",
    "blur_effect",
    "campaign_curves",
    "campaign_figure",
    "fill_reading",
    "fill_verdicts",
    "read_jsonl",
    "rule_outcome",
    "rule_verdict",
    "scale_reading",
    "scale_verdicts",
]

NETS = ("initial", "boundary")
VALIDATION_SETS = (
    ("camera_tuning_seed1", "camera tuning (seed 1)"),
    ("camera_seed2", "camera validation (seed 2)"),
    ("gaussian_kodak", "Gaussian, Kodak24"),
    ("gaussian_embedded", "Gaussian, embedded"),
)
SHORT = ("tuning", "validation", "Gaussian Kodak", "Gaussian embedded")  # the sets in a sentence


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSON-lines file (one object a line), [] when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rule_verdict(row: dict | None) -> str:
    """One paragraph on a ``candidates.jsonl`` row: each rule's figures and whether it holds.

    Examples
    --------
    >>> rule_verdict(None)
    'No checkpoint has been put to the selection rule yet.'
    """
    if row is None:
        return "No checkpoint has been put to the selection rule yet."
    held = {True: "holds", False: "fails"}
    g, rule = row["rule"]["gaussian_mean"], row["rule"]
    order = " (scored in both orders, chosen on the tuning set)" if row.get("swap_average") else ""
    return (
        f"The selection rule, applied last to the checkpoints of epochs {row['epoch_initial']} / "
        f"{row['epoch_boundary']}{order}: on the camera validation set the candidate scores "
        f"{row['camera']['candidate']:.3f} against the shipped {row['camera']['shipped']:.3f} (rule 2 "
        f"{held[rule['2_camera_beats_shipped']]}); on the paper's Gaussian validation sets "
        f"{g['candidate']:.3f} against {g['shipped']:.3f}, at most 0.005 below allowed (rule 3 "
        f"{held[rule['3_gaussian_within_slack']]}). "
        + ("It passes." if row["passes"] else "The default is unchanged; `campaign/README.md` says why.")
    )


def rule_outcome(row: dict | None) -> str:
    """One sentence for chapter 9: whether the latest campaign candidate passes the rule ('' if none).

    >>> rule_outcome({"profile": "camera2", "passes": False})
    "Nets trained on chapter 1's camera blur (campaign `camera2`, chapter 3) fail the selection rule."
    """
    if row is None:
        return ""
    return (
        f"Nets trained on chapter 1's camera blur (campaign `{row.get('profile', 'camera')}`, chapter 3) "
        f"{'pass' if row['passes'] else 'fail'} the selection rule."
    )


def blur_effect(row: dict | None) -> str:
    """The camera blur model's measured effect in one clause, from a ``candidates.jsonl`` row:
    what the campaign's nets gain on camera blur and lose on the paper's Gaussian blur (mean
    refined pixel accuracy, validation data only), and whether they ship."""
    if row is None:
        return "not measured yet: no campaign checkpoint has been scored"
    cam, kod, emb = row["camera"], row["gaussian_kodak"], row["gaussian_embedded"]
    shipped = "passes the selection rule" if row["passes"] else "fails the selection rule, so it does not ship"
    return (
        f"nets trained on it (campaign `{row.get('profile', 'camera')}`, epochs {row['epoch_initial']} / "
        f"{row['epoch_boundary']}): camera-blur "
        f"validation {cam['candidate']:.3f} vs the shipped {cam['shipped']:.3f} ({cam['candidate'] - cam['shipped']:+.3f}); "
        f"Gaussian validation: Kodak {kod['candidate'] - kod['shipped']:+.3f}, embedded textures "
        f"{emb['candidate'] - emb['shipped']:+.3f}; it {shipped}"
    )


def campaign_curves(folder: str | Path, profile: str = "camera") -> dict:
    """The campaign of ``profile`` (``camera``, ``camera2``) in ``folder``: ``{"initial": rows,
    "boundary": rows, "validation": rows,
    "shipped": row or None, "runs": [run ids in order], "sessions": n}`` (``sessions``: the most
    runs either network took); an epoch row has ``epoch``, ``loss``,
    ``acc``, ``val_acc``, ``steps``, ``seconds`` and ``run``.

    Raises
    ------
    FileNotFoundError
        If ``folder`` holds neither network's log.
    """
    folder = Path(folder)
    out = {net: read_jsonl(folder / f"{profile}-{net}.log.jsonl") for net in NETS}
    if not any(out[net] for net in NETS):
        raise FileNotFoundError(
            f"no campaign logs ({profile}-initial.log.jsonl, {profile}-boundary.log.jsonl) in {folder}"
        )
    validation = read_jsonl(folder / "validation.jsonl")
    out["shipped"] = next((r for r in validation if r.get("nets") == "shipped"), None)
    # rows written before campaigns had names are the first campaign's
    out["validation"] = [r for r in validation if r.get("nets") != "shipped" and r.get("profile", "camera") == profile]
    runs: list[str] = []
    for net in NETS:
        for r in out[net]:
            if r.get("run") not in runs:
                runs.append(r.get("run"))
    out["runs"] = runs
    # each network trains in its own process with its own run id, so runs are counted per network
    out["sessions"] = max(len({r.get("run") for r in out[net]}) for net in NETS)
    return out


def campaign_figure(curves: dict, total_epochs: int | None = None):
    """Three panels: each network's training loss and its validation accuracy per epoch (one
    colour a run: the n-th run of either network has the n-th colour), and the refined accuracy of the scored checkpoints on the camera
    validation set against the shipped default's."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.0))
    for ax, net in zip(axes[:2], NETS):
        rows = curves[net]
        runs = list(dict.fromkeys(r.get("run") for r in rows))  # this net's runs, one a session
        for i, run in enumerate(runs):
            mine = [r for r in rows if r.get("run") == run]
            e = [r["epoch"] for r in mine]
            ax.plot(e, [r["loss"] for r in mine], "o-", ms=3, color=plt.cm.tab10(i % 10), label=f"run {i + 1}")
        ax.set_title(f"{net} net: training loss", fontsize=9)
        ax.set_xlabel("epoch")
        if total_epochs:
            ax.set_xlim(0, total_epochs + 0.5)
        ax2 = ax.twinx()
        ax2.plot([r["epoch"] for r in rows], [r["val_acc"] for r in rows], "--", color="0.5", lw=1)
        ax2.set_ylabel("val. accuracy (dashed)", fontsize=8)
        ax2.set_ylim(0.4, 1.0)
        ax.legend(fontsize=6, loc="upper center")
    ax = axes[2]
    val = curves["validation"]
    if val:
        e = [max(r["epoch_initial"], r["epoch_boundary"]) for r in val]
        ax.plot(e, [r["refined"]["mean"] for r in val], "o-", label="campaign, mean")
        ax.plot(e, [r["refined"]["worst"] for r in val], "s:", label="campaign, worst pair")
    if curves["shipped"] is not None:
        ax.axhline(curves["shipped"]["refined"]["mean"], color="k", lw=1, label="shipped default, mean")
        ax.axhline(curves["shipped"]["refined"]["worst"], color="k", lw=1, ls=":", label="shipped, worst")
    ax.set_title("camera validation set: refined accuracy", fontsize=9)
    ax.set_xlabel("epoch of the checkpoint")
    if total_epochs:
        ax.set_xlim(0, total_epochs + 0.5)
    lowest = min([r["refined"]["worst"] for r in val], default=0.5)
    ax.set_ylim(min(0.5, 0.05 * int(lowest / 0.05)), 1.0)  # room for the worst pair of an early checkpoint
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def ablation_table(rows: list[dict]) -> str:
    """A Markdown table of ablation rows (``scripts/ablate_scale.py``, ``ablate_fill.py``): one
    line per setting (nets, orders, and the option the rows vary: ``two_scale`` or
    ``fill_margin``), the mean refined accuracy on each validation set.

    >>> print(ablation_table([{"nets": "shipped", "swap_average": False, "two_scale": True,
    ...     "camera_tuning_seed1": 0.9, "camera_seed2": 0.91, "gaussian_kodak": 0.99, "gaussian_embedded": 0.97}]))
    | nets | orders | scales | camera tuning (seed 1) | camera validation (seed 2) | Gaussian, Kodak24 | Gaussian, embedded |
    |---|---|---|---|---|---|---|
    | shipped | one | 1 and 0.5 | 0.9000 | 0.9100 | 0.9900 | 0.9700 |
    """
    options = [
        (key, title, show)
        for key, title, show in (
            ("two_scale", "scales", lambda v: "1 and 0.5" if v else "1"),
            ("fill_margin", "fill margin", lambda v: f"{v:g}"),
        )
        if any(key in r for r in rows)
    ]
    head = "| nets | orders | " + "".join(f"{t} | " for _, t, _ in options) + " | ".join(t for _, t in VALIDATION_SETS)
    lines = [head + " |", "|---" * (len(VALIDATION_SETS) + len(options) + 2) + "|"]
    for r in rows:
        cells = [
            r["nets"],
            "both" if r.get("swap_average") else "one",
            *(show(r.get(key, 0)) for key, _, show in options),
            *(f"{r[k]:.4f}" for k, _ in VALIDATION_SETS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _judged(base: dict, chosen: dict) -> tuple[dict, bool]:
    """Per validation set, ``chosen`` minus ``base``, and whether no set but the tuning set lost
    more than 0.005 (the slack both ablation rules allow)."""
    d = {k: chosen[k] - base[k] for k, _ in VALIDATION_SETS}
    return d, min(d[k] for k, _ in VALIDATION_SETS[1:]) >= -0.005


def _changes(delta: dict) -> str:
    """``delta`` in a sentence: each set's short name and signed difference."""
    return ", ".join(f"{t} {delta[k]:+.4f}" for t, (k, _) in zip(SHORT, VALIDATION_SETS))


def fill_verdicts(rows: list[dict]) -> list[dict]:
    """The fill ablation read by the rule ``scripts/ablate_fill.py`` fixed before its first run:
    for each nets and order the margin with the highest tuning-set accuracy (a tie keeps the
    smaller), which helps if it is above 0 and loses at most 0.005 against margin 0 on every
    other set.  One ``{"nets", "swap_average", "margin", "delta", "helps"}`` per nets and order
    (``delta``: the chosen margin minus margin 0, per validation set)."""
    out = []
    for nets, swap in dict.fromkeys((r["nets"], bool(r.get("swap_average"))) for r in rows if "fill_margin" in r):
        mine = sorted(
            (r for r in rows if (r["nets"], bool(r.get("swap_average"))) == (nets, swap)),
            key=lambda r: r["fill_margin"],
        )
        base = next((r for r in mine if r["fill_margin"] == 0), None)
        if base is None:
            continue
        best = max(mine, key=lambda r: (r["camera_tuning_seed1"], -r["fill_margin"]))
        d, within = _judged(base, best)
        helps = best["fill_margin"] > 0 and within
        out.append({"nets": nets, "swap_average": swap, "margin": best["fill_margin"], "delta": d, "helps": helps})
    return out


def fill_reading(rows: list[dict]) -> str:
    """:func:`fill_verdicts` in words, one sentence per nets and order."""
    out = []
    for v in fill_verdicts(rows):
        order = "both orders" if v["swap_average"] else "one order"
        if v["margin"] == 0:
            out.append(f"{v['nets']} in {order}: margin 0, the paper's, is best on the tuning set (does not help).")
            continue
        changes = _changes(v["delta"])
        out.append(
            f"{v['nets']} in {order}: margin {v['margin']:g} ({changes}; {'helps' if v['helps'] else 'does not help'})."
        )
    return " ".join(out)


def scale_verdicts(rows: list[dict]) -> list[dict]:
    """The two-scale ablation read by the rule ``scripts/ablate_scale.py`` fixed before its first
    run: for each nets and order, two scales help if they raise the tuning-set accuracy and lose at
    most 0.005 on every other set.  One ``{"nets", "swap_average", "delta", "helps"}`` per nets and
    order (``delta``: two scales minus one, per validation set)."""
    out = []
    for r in rows:
        if r.get("two_scale"):
            continue
        same = [
            q
            for q in rows
            if q.get("two_scale") and (q["nets"], q.get("swap_average")) == (r["nets"], r.get("swap_average"))
        ]
        if not same:
            continue
        d, within = _judged(r, same[-1])
        helps = d["camera_tuning_seed1"] > 0 and within
        out.append({"nets": r["nets"], "swap_average": bool(r.get("swap_average")), "delta": d, "helps": helps})
    return out


def scale_reading(rows: list[dict]) -> str:
    """:func:`scale_verdicts` in words, one sentence per nets and order."""
    out = []
    for v in scale_verdicts(rows):
        order = "both orders" if v["swap_average"] else "one order"
        changes = _changes(v["delta"])
        out.append(f"{v['nets']} in {order}: {changes} ({'helps' if v['helps'] else 'does not help'}).")
    return " ".join(out)
